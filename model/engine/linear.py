"""The projections of a GPT-2 block as callables: prepacked for oneDNN on CPU, or int8 weights.

Prepacked (fp32, bf16): oneDNN re-arranges each weight once, where torch's CPU GEMM re-arranges it
on every call of a decode step's few rows; the cost is the weights held twice
(`ENGINE_CPU_PREPACK=false` turns it off).

int8 (`ENGINE_CPU_DTYPE=int8`, `Int8Weights`): every projection and the output layer, weights
quantized once per output channel, activations per row at each call, `torch._int_mm`: the
fastest int8 product at one row that keeps a row's result independent of its neighbours.

The timings behind both choices are in docs/engine.md ("Prepacked weights", "int8 weights").
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

Projection = Callable[[torch.Tensor], torch.Tensor]
Int8Rows = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # model/engine/native
# steps of at most this many rows go to the native int8 kernel: oneDNN's int8 products are
# built for batches and read the weights several times slower at one row
NATIVE_INT8_ROWS = 4
CHECK_TOLERANCE = 1e-3  # a prepacked fp32 projection must agree with the module on a probe
# bf16 rounds to 8 bits of mantissa; int8 weights to 1/254 of each channel's range
LOW_PRECISION_TOLERANCE = 5e-2
WEIGHTS = ("modules", "prepack", "int8")


@dataclass(frozen=True)
class BlockProjections:
    qkv: Projection  # (…, C) -> (…, 3C)
    out: Projection  # attention output projection (…, C) -> (…, C)
    up: Projection  # (…, C) -> (…, 4C), activation included
    down: Projection  # (…, 4C) -> (…, C)
    # `up` without its activation, and the activation: an adapter's update goes between them
    up_linear: Projection
    act: Projection


def prepack_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def int8_available() -> bool:
    return hasattr(torch, "_int_mm")


class Prepacked:
    """`x @ W.T + b` (then tanh GELU when asked) with W prepacked once by oneDNN, in W's dtype."""

    def __init__(
        self, weight_out_in: torch.Tensor, bias: torch.Tensor | None, gelu: bool = False
    ) -> None:
        with torch.no_grad():
            self.weight = torch.ops.mkldnn._reorder_linear_weight(weight_out_in.contiguous())
            self.bias = None if bias is None else bias.detach().to(weight_out_in.dtype)
        self.attr, self.algorithm = ("gelu", "tanh") if gelu else ("none", "")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
            x, self.weight, self.bias, self.attr, [], self.algorithm
        )
        return out


class Int8Weights:
    """`x @ W.T + b` (then tanh GELU when asked) in int8: W quantized once per output channel,
    `x` per row at each call (dynamic quantization, scale = max |x_row| / 127), the product by
    `torch._int_mm` (int8 x int8 -> int32), or for at most `NATIVE_INT8_ROWS` rows by `rows_op`
    (gpt2bot's own kernel, equal bit for bit). Per-row scales keep a row's result independent
    of the other rows of the batch. In and out in W's dtype (fp32 or bf16)."""

    def __init__(
        self,
        weight_out_in: torch.Tensor,
        bias: torch.Tensor | None,
        gelu: bool = False,
        rows_op: Int8Rows | None = None,
    ) -> None:
        with torch.no_grad():
            weight = weight_out_in.detach().float()
            scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127  # (N,)
            quantized = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
            # (K, N), a view of contiguous (N, K) rows: `_int_mm`'s fast layout (docs/engine.md
            # times (K, N)-contiguous rows far slower) and the native kernel's
            self.weight = quantized.contiguous().t()
            dtype = weight_out_in.dtype
            self.scale = (scale / 127).to(dtype)  # folds the activations' 1/127 in
            self.bias = torch.zeros_like(self.scale) if bias is None else bias.detach().to(dtype)
        self.gelu = gelu
        self.rows_op = rows_op

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # abs + amax: torch.linalg.vector_norm(inf) took 76 us here for 32 rows, this 5 us
        peak = x.abs().amax(dim=-1, keepdim=True).clamp_(min=1e-12)
        # in bf16, 127 / peak may round up: the row's peak would wrap to -128 without the clamp
        quantized = (x * (127 / peak)).round_().clamp_(-127, 127).to(torch.int8)  # (M, K)
        if self.rows_op is not None and x.dim() == 2 and x.size(0) <= NATIVE_INT8_ROWS:
            products = self.rows_op(quantized, self.weight.t())  # (N, K): W's own rows
        else:
            products = torch._int_mm(quantized, self.weight)
        out = torch.addcmul(self.bias, products, peak * self.scale)
        return F.gelu(out, approximate="tanh") if self.gelu else out


def without_gelu(projection: Projection) -> Projection:
    """A converted projection's twin without its fused GELU (the same weights, not a copy)."""
    if isinstance(projection, ByRows):
        return ByRows(without_gelu(projection.few), without_gelu(projection.many), projection.rows)
    twin = copy.copy(projection)
    if isinstance(twin, Prepacked):
        twin.attr, twin.algorithm = "none", ""
    elif isinstance(twin, Int8Weights):
        twin.gelu = False
    return twin


class ByRows:
    """`few(x)` for inputs of at most `rows` rows (a lone member's decode step), `many(x)`
    otherwise: int8 weights read half the bytes of bf16 where a step is a read of the weights,
    and prepacked bf16 multiplies a batch faster."""

    def __init__(self, few: Projection, many: Projection, rows: int) -> None:
        self.few, self.many, self.rows = few, many, rows

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.few(x) if x.dim() == 2 and x.size(0) <= self.rows else self.many(x)


def by_rows(
    weight_out_in: torch.Tensor,
    bias: torch.Tensor | None,
    gelu: bool = False,
    *,
    rows_op: Int8Rows,
    rows: int,
) -> ByRows:
    """A projection prepacked for batches and int8 (with `rows_op`) for `rows` rows or fewer."""
    few = Int8Weights(weight_out_in, bias, gelu, rows_op)
    return ByRows(few, Prepacked(weight_out_in, bias, gelu), rows)


def module_projections(block: Any, tanh_gelu: bool) -> BlockProjections:
    """The block's own modules (GPT-2's Conv1D keeps weights as (in, out))."""
    act = partial(F.gelu, approximate="tanh") if tanh_gelu else block.mlp.act

    def up(x: torch.Tensor) -> torch.Tensor:
        return act(block.mlp.c_fc(x))

    mlp = block.mlp
    return BlockProjections(block.attn.c_attn, block.attn.c_proj, up, mlp.c_proj, mlp.c_fc, act)


def converted_projections(block: Any, tanh_gelu: bool, kind: Any) -> BlockProjections:
    """The block's projections as `kind` (`Prepacked`, or `Int8Weights` with its options),
    GELU fused when tanh."""

    def convert(conv: Any, gelu: bool = False) -> Projection:
        converted: Projection = kind(conv.weight.detach().t(), conv.bias, gelu)
        return converted

    act: Projection
    if tanh_gelu:
        up: Projection = convert(block.mlp.c_fc, gelu=True)
        c_fc, act = without_gelu(up), partial(F.gelu, approximate="tanh")
    else:
        c_fc, act = convert(block.mlp.c_fc), block.mlp.act

        def up(x: torch.Tensor) -> torch.Tensor:
            return act(c_fc(x))

    return BlockProjections(
        convert(block.attn.c_attn),
        convert(block.attn.c_proj),
        up,
        convert(block.mlp.c_proj),
        c_fc,
        act,
    )


def build(
    blocks: list[Any],
    head: Any,
    tanh_gelu: bool,
    weights: str,
    width: int,
    rows_op: Int8Rows | None = None,
    few_rows: int = 0,
) -> tuple[list[BlockProjections], Projection]:
    """Projections for every block and the output layer as `weights` asks ("modules",
    "prepack", "int8"; int8 with `rows_op` for a few rows; "prepack" with `few_rows` and
    `rows_op`: int8 for steps of at most `few_rows` rows) when possible (checked against the
    modules on a probe input), else the modules themselves."""
    plain = [module_projections(b, tanh_gelu) for b in blocks]
    available = {"prepack": prepack_available(), "int8": int8_available() and prepack_available()}
    if weights == "modules" or not available.get(weights, False):
        if weights != "modules":
            log.warning("%s weights unavailable in this torch build: using the modules", weights)
        return plain, head
    kind: Any = partial(Int8Weights, rows_op=rows_op) if weights == "int8" else Prepacked
    if weights == "prepack" and few_rows and rows_op is not None:
        kind = partial(by_rows, rows_op=rows_op, rows=few_rows)
    try:
        packed = [converted_projections(b, tanh_gelu, kind) for b in blocks]
        packed_head = kind(head.weight.detach(), getattr(head, "bias", None))
        _check(plain[0], packed[0], head, packed_head, width)
    except (RuntimeError, ValueError) as error:
        log.warning("%s weights unavailable (%s): using the model's modules", weights, error)
        return plain, head
    return packed, packed_head


def _check(
    plain: BlockProjections,
    packed: BlockProjections,
    head: Any,
    packed_head: Projection,
    width: int,
) -> None:
    """Raise ValueError when the converted projections disagree with the modules."""
    dtype = head.weight.dtype
    exact = dtype == torch.float32 and isinstance(packed_head, Prepacked)
    tolerance = CHECK_TOLERANCE if exact else LOW_PRECISION_TOLERANCE
    probe = torch.randn(2, width, generator=torch.Generator().manual_seed(0)).to(dtype)
    probe = probe.to(head.weight.device)
    pairs: list[tuple[Projection, Projection]] = [
        (plain.qkv, packed.qkv),
        (plain.up, packed.up),
        (head, packed_head),
    ]
    with torch.inference_mode():
        for reference, candidate in pairs:
            expected, got = reference(probe).float(), candidate(probe).float()
            scale = float(expected.abs().max()) or 1.0
            if float((expected - got).abs().max()) > tolerance * scale + tolerance:
                raise ValueError("converted projection disagrees with the module")
