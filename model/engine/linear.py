"""The projections of a GPT-2 block as callables, prepacked for oneDNN on CPU.

A decode step multiplies a few rows (one per running sample) by every weight matrix of the
model. For such short inputs, torch's default CPU GEMM (MKL) spends much of its time
re-arranging the weight on every call, and on CPUs where MKL takes a generic code path (AMD)
it is slow outright. oneDNN can re-arrange (prepack) a weight once, for good. Measured on the
2-core AMD EPYC (AVX2) of this project, fp32, GPT-2 124M, the four projections of 12 blocks:

    rows        1      8     32
    addmm     20 ms  58 ms  116 ms
    prepacked 12 ms  29 ms   87 ms

and the 50257-wide output layer at 8 rows: 46 ms → 15 ms. The cost is memory: the prepacked
copies sit beside the model's own weights (which the rest of the program still uses), so the
engine holds the weights twice (+500 MB for GPT-2 124M in fp32). `ENGINE_CPU_PREPACK=false`
turns it off. Only fp32 on CPU is prepacked; GPUs and bf16 (which torch already sends to oneDNN)
use the model's modules as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

Projection = Callable[[torch.Tensor], torch.Tensor]
CHECK_TOLERANCE = 1e-3  # a prepacked projection must agree with the module on a probe input


@dataclass(frozen=True)
class BlockProjections:
    qkv: Projection  # (…, C) -> (…, 3C)
    out: Projection  # attention output projection (…, C) -> (…, C)
    up: Projection  # (…, C) -> (…, 4C), activation included
    down: Projection  # (…, 4C) -> (…, C)


def prepack_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class Prepacked:
    """`x @ W.T + b` (then tanh GELU when asked) with W prepacked once by oneDNN."""

    def __init__(
        self, weight_out_in: torch.Tensor, bias: torch.Tensor | None, gelu: bool = False
    ) -> None:
        with torch.no_grad():
            self.weight = torch.ops.mkldnn._reorder_linear_weight(weight_out_in.contiguous())
            self.bias = None if bias is None else bias.detach().contiguous()
        self.attr, self.algorithm = ("gelu", "tanh") if gelu else ("none", "")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
            x, self.weight, self.bias, self.attr, [], self.algorithm
        )
        return out


def module_projections(block: Any, tanh_gelu: bool) -> BlockProjections:
    """The block's own modules (GPT-2's Conv1D keeps weights as (in, out))."""
    act = partial(F.gelu, approximate="tanh") if tanh_gelu else block.mlp.act

    def up(x: torch.Tensor) -> torch.Tensor:
        return act(block.mlp.c_fc(x))

    return BlockProjections(block.attn.c_attn, block.attn.c_proj, up, block.mlp.c_proj)


def prepacked_projections(block: Any, tanh_gelu: bool) -> BlockProjections:
    def pack(conv: Any, gelu: bool = False) -> Prepacked:
        return Prepacked(conv.weight.detach().t(), conv.bias, gelu)

    if tanh_gelu:
        up: Projection = pack(block.mlp.c_fc, gelu=True)  # GELU fused into the GEMM
    else:
        c_fc, act = pack(block.mlp.c_fc), block.mlp.act

        def up(x: torch.Tensor) -> torch.Tensor:
            return act(c_fc(x))

    return BlockProjections(
        pack(block.attn.c_attn), pack(block.attn.c_proj), up, pack(block.mlp.c_proj)
    )


def build(
    blocks: list[Any], head: Any, tanh_gelu: bool, prepack: bool, width: int
) -> tuple[list[BlockProjections], Projection]:
    """Projections for every block and the output layer: prepacked when asked and possible
    (checked against the modules on a probe input), else the modules themselves."""
    plain = [module_projections(b, tanh_gelu) for b in blocks]
    if not prepack or not prepack_available():
        return plain, head
    try:
        packed = [prepacked_projections(b, tanh_gelu) for b in blocks]
        packed_head = Prepacked(head.weight.detach(), getattr(head, "bias", None))
        probe = torch.randn(2, width, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            pairs: list[tuple[Projection, Projection]] = [
                (plain[0].qkv, packed[0].qkv),
                (plain[0].up, packed[0].up),
                (head, packed_head),
            ]
            for reference, candidate in pairs:
                expected, got = reference(probe), candidate(probe)
                if not torch.allclose(expected, got, atol=CHECK_TOLERANCE, rtol=CHECK_TOLERANCE):
                    raise ValueError("prepacked projection disagrees with the module")
    except (RuntimeError, ValueError) as error:
        log.warning("oneDNN prepacking unavailable (%s): using the model's modules", error)
        return plain, head
    return packed, packed_head
