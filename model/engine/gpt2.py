"""GPT-2's forward pass over a slot-based KV cache, using the weights of a transformers model.

Why not `model(...)` with a transformers cache: continuous batching needs rows of different
lengths that join and leave between steps. Here every row owns a slot of a preallocated cache
(`KVCache`, rows kept contiguous), its keys and values start at column 0, and an attention mask
hides the columns past its length. That gives each row GPT-2's own position ids (0, 1, 2, … from
its first token, never shifted by padding), no per-step concatenation of the cache, and a row
that leaves costs one row copy.

Prefill packs the prompts end to end into one sequence without padding: the linear layers (nearly
all of the work) see only real tokens, and attention runs per prompt, causal within it. Padding
the prompts of a mixed burst (8-64 tokens) to the longest would nearly double that work.

On CPU, decode attention is gpt2bot's own kernel where it builds (`model/engine/native`): it
writes the step's keys and values and reads each row's own columns only, so no mask is built.

The block's projections and the output layer come from `model/engine/linear.py`: on CPU in fp32
they are prepacked for oneDNN (much faster for the few rows of a decode step), elsewhere they
are the model's own modules. On CUDA, the batch replays its decode steps from CUDA graphs of
`decode_columns` (`model/engine/graphs.py`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel
from transformers import PreTrainedModel

from model.engine import linear, native
from model.engine.adapters import LoraStep
from model.engine.attention import (
    additive_mask,
    attention_backends,
    bmm_attention,
    boolean_mask,
    sdpa_attention,
)

# one step's attention of one layer: (qkv (B, 3, H, D), keys, values (B, H, T, D)) -> (B, C)
StepAttention = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# columns added when a row outgrows the cache. torch's CPU decode attention reads every
# allocated column, but a growth allocates the whole cache anew (GPT-2 124M, bf16, 32 rows:
# 40-150 ms, mostly page faults): 64 beat 16 by 4-6 % on the burst, side by side
CACHE_GROWTH = 64
SHRINK_SLACK = 128  # `fit` gives columns back only past this many unused (a copy of the cache)


class UnsupportedModel(ValueError):
    """The engine runs GPT-2 models only."""


class KVCache:
    """Keys and values of all rows: (layers, rows, heads, columns, head_dim), grown on demand."""

    def __init__(
        self,
        layers: int,
        rows: int,
        heads: int,
        head_dim: int,
        limit: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.limit = limit  # the model's context length
        shape = (layers, rows, heads, 0, head_dim)
        self.keys = torch.empty(shape, dtype=dtype, device=device)
        self.values = torch.empty(shape, dtype=dtype, device=device)
        # rows 0…clean_rows-1 hold finite numbers in every column; the others may hold
        # anything until `claim`ed. Columns a row has not written are masked, but a weight of 0
        # times NaN is NaN, so every row a step reads must be finite.
        self.clean_rows = rows

    @property
    def columns(self) -> int:
        return self.keys.shape[3]

    def ensure(self, columns: int, rows_in_use: int | None = None) -> None:
        """Make room for `columns` positions per row, keeping what rows 0…rows_in_use-1 store
        (all rows when None). Rows past them are left unwritten until `claim`: zeroing a whole
        32-row cache (GPT-2 124M, bf16) took 40-86 ms a growth, mostly page faults, for a
        batch of one row that then used ~1 ms of it."""
        if columns > self.columns:
            self._resize(min(self.limit, max(columns, self.columns + CACHE_GROWTH)), rows_in_use)

    def fit(self, columns: int, rows_in_use: int | None = None) -> None:
        """Give back columns past `columns` (rounded up to the growth step) when more than
        `SHRINK_SLACK` are unused: a CPU decode step reads every allocated column, so a cache
        left wide by a long row that has gone would slow every later step."""
        wanted = min(self.limit, -(-max(1, columns) // CACHE_GROWTH) * CACHE_GROWTH)
        if self.columns - wanted >= SHRINK_SLACK:
            self._resize(wanted, rows_in_use)

    def _resize(self, columns: int, rows_in_use: int | None) -> None:
        """A cache of `columns` columns holding what rows 0…rows_in_use-1 (all when None)
        store, their new columns zero; the other rows unwritten."""
        kept = self.keys.shape[1] if rows_in_use is None else rows_in_use
        shared = min(columns, self.columns)
        for name in ("keys", "values"):
            old = getattr(self, name)
            new = uninitialized((*old.shape[:3], columns, old.shape[4]), old)
            new[:, :kept, :, :shared] = old[:, :kept, :, :shared]
            new[:, :kept, :, shared:] = 0
            setattr(self, name, new)
        self.clean_rows = min(self.clean_rows, kept)

    def claim(self, first: int, count: int) -> None:
        """Rows first…first+count-1 are about to be used (a prefill): zero those left unwritten
        by a resize (rows stay contiguous, so the clean ones are always a prefix)."""
        end = first + count
        if end > self.clean_rows:
            self.keys[:, self.clean_rows : end] = 0
            self.values[:, self.clean_rows : end] = 0
            self.clean_rows = end

    def move_row(self, source: int, target: int) -> None:
        """Copy a row over another (a leaving row replaced by the last one, or a request's
        second sample copied from its first): a clean row copied just past the clean prefix
        extends it."""
        self.keys[:, target] = self.keys[:, source]
        self.values[:, target] = self.values[:, source]
        if target == self.clean_rows and source < self.clean_rows:
            self.clean_rows += 1

    def bytes(self) -> int:
        return 2 * self.keys.numel() * self.keys.element_size()


def uninitialized(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """Memory for a cache tensor, left as it is (the tests fill it with NaN)."""
    return torch.empty(shape, dtype=like.dtype, device=like.device)


class GPT2Runner:
    """Runs prefill and decode steps of a `GPT2LMHeadModel` against a `KVCache`.

    `prepack`: on CPU, oneDNN-prepacked projections (fp32 or bf16); `int8`: on CPU, int8 weights
    for the blocks' projections (model/engine/linear.py), activations in the model's dtype;
    `native_attention`: on CPU, fp32 and bf16, decode attention by gpt2bot's own kernel
    (model/engine/native) where it builds, else torch's batched products (`bmm_attention`);
    `native_int8`: with int8 weights, steps of a few rows by gpt2bot's own int8 kernel;
    `int8_rows`: on CPU with prepacked weights, steps of at most this many rows multiply by
    int8 weights (and that kernel) instead, where it builds."""

    def __init__(
        self,
        model: PreTrainedModel,
        prepack: bool = True,
        int8: bool = False,
        native_attention: bool = True,
        native_int8: bool = True,
        int8_rows: int = 0,
    ) -> None:
        config = model.config
        if config.model_type != "gpt2":
            raise UnsupportedModel(f"the engine serves GPT-2 models, not {config.model_type!r}")
        if getattr(config, "scale_attn_by_inverse_layer_idx", False) or getattr(
            config, "reorder_and_upcast_attn", False
        ):
            raise UnsupportedModel("GPT-2 attention variants are not supported by the engine")
        self.model = model
        body: Any = model.transformer  # wte, wpe, h (blocks), ln_f (Any: typed as a union)
        self.body = body
        self.lm_head: Any = model.lm_head
        self.layers = int(config.n_layer)
        self.heads = int(config.n_head)
        self.width = int(config.n_embd)
        self.head_dim = self.width // self.heads
        self.context = int(config.n_positions)
        self.vocab = int(config.vocab_size)
        self.dtype = model.dtype
        self.device = model.device
        self.scale = 1.0 / math.sqrt(self.head_dim) if config.scale_attn_weights else 1.0
        # GPT-2's "gelu_new" is the tanh approximation of GELU, which torch has as one op
        tanh_gelu = config.activation_function in ("gelu_new", "gelu_pytorch_tanh")
        on_cpu = self.device.type == "cpu"
        int8 = int8 and on_cpu and self.dtype in (torch.float32, torch.bfloat16)
        self.weights = "int8" if int8 else "prepack" if prepack and on_cpu else "modules"
        few_rows = int8_rows if self.weights == "prepack" and native_int8 else 0
        wants_kernel = (int8 and native_int8) or few_rows > 0
        rows_op = native.int8_rows() if wants_kernel else None
        self.projections, self._head = linear.build(
            list(body.h), self.lm_head, tanh_gelu, self.weights, self.width, rows_op, few_rows
        )
        self._decode_attention = bmm_attention if on_cpu else sdpa_attention
        self._decode_mask = additive_mask if on_cpu else boolean_mask
        native_dtype = self.dtype in (torch.float32, torch.bfloat16)
        use_native = native_attention and on_cpu and native_dtype
        self.native_attention = native.decode_attention() if use_native else None

    def new_cache(self, rows: int) -> KVCache:
        """An empty cache of `rows` rows shaped for this model (its caller owns it)."""
        return KVCache(
            self.layers, rows, self.heads, self.head_dim, self.context, self.dtype, self.device
        )

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._head(self.body.ln_f(hidden))

    def _attention(self) -> contextlib.AbstractContextManager[None]:
        backends = attention_backends(self.device)
        return contextlib.nullcontext() if backends is None else sdpa_kernel(backends)

    @torch.inference_mode()
    def prefill(
        self,
        prompts: list[list[int]],
        cache: KVCache,
        first_row: int,
        lora: LoraStep | None = None,
    ) -> torch.Tensor:
        """Run `prompts` into cache rows first_row, first_row+1, …; logits (N, V) at their ends.
        `lora`: each prompt's adapter (one mask row per prompt), None for the base alone."""
        with self._attention():
            hidden, ends = self._prefill(prompts, cache, first_row, lora)
            return self._logits(hidden[ends - 1])  # (N, V)

    @torch.inference_mode()
    def score(self, ids: list[int]) -> torch.Tensor:
        """Logits (T, V) at every position of one sequence, through the kernels decoding uses
        (for quality checks: held-out loss of the engine's own arithmetic)."""
        with self._attention():
            hidden, _ = self._prefill([ids], self.new_cache(1), 0, None)
            return self._logits(hidden)

    @torch.inference_mode()
    def decode(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        cache: KVCache,
        rows: slice,
        lora: LoraStep | None = None,
    ) -> torch.Tensor:
        """One token per row: `tokens` (B,) at `positions` (B,) for cache `rows`; logits (B, V).
        `lora`: each row's adapter, None for the base alone."""
        columns = int(positions.max()) + 1
        if self.device.type == "cpu" and self.native_attention is None:
            cache.ensure(columns)  # every allocated column: see `bmm_attention`
            columns = cache.columns
        with self._attention():
            return self._decode(tokens, positions, cache, rows, columns, lora)

    @torch.inference_mode()
    def decode_columns(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        cache: KVCache,
        rows: slice,
        columns: int,
    ) -> torch.Tensor:
        """`decode` reading exactly `columns` cache columns (≥ every position + 1): the step
        that CUDA graphs record, its shapes fixed by buckets (model/engine/graphs.py)."""
        with self._attention():
            return self._decode(tokens, positions, cache, rows, columns)

    def _prefill(
        self, prompts: list[list[int]], cache: KVCache, first_row: int, lora: LoraStep | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states (T, C) of the packed prompts and the end offsets (N,) of each."""
        lengths = [len(p) for p in prompts]
        cache.ensure(max(lengths), first_row + len(prompts))  # rows past these are free
        cache.claim(first_row, len(prompts))
        device = self.device
        ids = torch.tensor([t for p in prompts for t in p], device=device)  # (T,) packed
        positions = torch.cat([torch.arange(n, device=device) for n in lengths])
        ends = torch.tensor(lengths, device=device).cumsum(0)
        x = self.body.wte(ids) + self.body.wpe(positions)  # (T, C)
        bounds = list(zip([0, *ends.tolist()[:-1]], lengths, strict=True))
        lora = None if lora is None else lora.repeat(lengths)  # a mask row per token
        for index, (block, project) in enumerate(zip(self.body.h, self.projections, strict=True)):
            qkv = through(lora, index, "qkv", project.qkv, block.ln_1(x))
            qkv = qkv.view(-1, 3, self.heads, self.head_dim)
            parts = []
            for row, (start, length) in enumerate(bounds, start=first_row):
                q, k, v = qkv[start : start + length].permute(1, 2, 0, 3)  # each (H, L, D)
                cache.keys[index, row, :, :length] = k
                cache.values[index, row, :, :length] = v
                attended = F.scaled_dot_product_attention(
                    q[None], k[None], v[None], is_causal=True, scale=self.scale
                )  # (1, H, L, D)
                parts.append(attended[0].transpose(0, 1).reshape(length, self.width))
            x = x + through(lora, index, "out", project.out, torch.cat(parts))
            x = x + mlp(lora, index, project, block.ln_2(x))
        return x, ends

    def _decode(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        cache: KVCache,
        rows: slice,
        columns: int,
        lora: LoraStep | None = None,
    ) -> torch.Tensor:
        count = tokens.shape[0]
        cache.ensure(columns)
        x = self.body.wte(tokens) + self.body.wpe(positions)  # (B, C)
        attend = self.step_attention(positions, columns)
        for index, (block, project) in enumerate(zip(self.body.h, self.projections, strict=True)):
            qkv = through(lora, index, "qkv", project.qkv, block.ln_1(x))
            qkv = qkv.view(count, 3, self.heads, self.head_dim)
            attended = attend(qkv, cache.keys[index, rows], cache.values[index, rows])  # (B, C)
            x = x + through(lora, index, "out", project.out, attended)
            x = x + mlp(lora, index, project, block.ln_2(x))
        return self._logits(x)  # (B, V)

    def step_attention(self, positions: torch.Tensor, columns: int) -> StepAttention:
        """One decode step's attention for rows at `positions` (B,), reading `columns` cache
        columns: `attend(qkv (B, 3, H, D), keys, values (B, H, T, D) views of the layer's cache
        rows)` writes the new key and value into the cache and returns (B, C)."""
        scale = self.scale
        if self.native_attention is not None:
            native_op = self.native_attention

            def attend_native(
                qkv: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
            ) -> torch.Tensor:
                return native_op(qkv[:, 0], qkv[:, 1], qkv[:, 2], keys, values, positions, scale)

            return attend_native
        visible = torch.arange(columns, device=positions.device)[None] <= positions[:, None]
        mask = self._decode_mask(visible, self.heads, self.dtype)  # each row sees its own tokens
        batch_index = torch.arange(positions.shape[0], device=positions.device)
        attention = self._decode_attention

        def attend(qkv: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
            keys[batch_index, :, positions] = qkv[:, 1]
            values[batch_index, :, positions] = qkv[:, 2]
            return attention(qkv[:, 0], keys[:, :, :columns], values[:, :, :columns], mask, scale)

        return attend


def through(
    lora: LoraStep | None, layer: int, name: str, projection: linear.Projection, x: torch.Tensor
) -> torch.Tensor:
    """`projection(x)`, plus each row's adapter update when the step has adapters."""
    out = projection(x)
    return out if lora is None else lora.add(layer, name, x, out)


def mlp(
    lora: LoraStep | None, layer: int, project: linear.BlockProjections, x: torch.Tensor
) -> torch.Tensor:
    """The block's MLP; with adapters, each update goes in before the activation."""
    if lora is None:
        return project.down(project.up(x))
    hidden = project.act(lora.add(layer, "up", x, project.up_linear(x)))
    return lora.add(layer, "down", hidden, project.down(hidden))
