"""Where a decode step's time goes, against what reading its bytes from memory would cost.

For the engine's own runner (model/engine/gpt2.py) on a cache of `COLUMNS` positions, per row
count: the whole step, its projections alone (the blocks' 48 and the output layer, in order,
with the step's kernels), its attention alone (12 layers over the cache with the step's cache
writes, `GPT2Runner.step_attention`: gpt2bot's kernel or torch's), the rest by difference
(layer norms, residual adds, embeddings, and the dispatch of its ops from Python), and
sampling (`sample_next`, the single-stream scenario's parameters). Beside them the bytes a
step must read (the weights, once, and the cached keys and values) and the time
that takes at the read bandwidth measured in the same run: no kernel can beat it, so it bounds
tokens/s for one stream at `1000 / floor_ms`. Each time is the fastest of `TRIES` after a
warm-up (`ceiling.fastest_s`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from model.backends.local import int8_rows_of
from model.bench.ceiling import fastest_s, weight_elements
from model.engine.gpt2 import GPT2Runner
from model.engine.linear import ByRows
from model.engine.sampling import RowParams, row_generator, sample_next
from model.versions import LoadedModel

ROWS = (1, 32)
COLUMNS = 128  # cached positions per row: a 16-token prompt and ~100 tokens streamed
TRIES = 15
BANDWIDTH_MB = 512  # read by the bandwidth probe: far beyond any CPU's last-level cache


def fastest_ms(run: Callable[[], Any], tries: int = TRIES) -> float:
    return fastest_s(run, tries) * 1e3


def read_bandwidth_gb_s() -> float:
    """GB/s of summing a tensor of `BANDWIDTH_MB` (one streaming read, all of torch's threads)."""
    data = torch.ones(BANDWIDTH_MB * 2**20 // 4)
    return BANDWIDTH_MB * 2**20 / 1e9 / (fastest_ms(data.sum, tries=5) / 1e3)


def _weight_bytes(runner: GPT2Runner, rows: int, weights: str) -> int:
    """The weight bytes a step of `rows` rows reads with `weights` (see `step_breakdown`)."""
    head = runner._head
    int8 = weights == "int8" or (isinstance(head, ByRows) and rows <= head.rows)
    return weight_elements(runner.model.config) * (1 if int8 else runner.dtype.itemsize)


@torch.inference_mode()
def _rows(runner: GPT2Runner, rows: int, weights: str, gb_s: float) -> dict[str, Any]:
    cache = runner.new_cache(max(ROWS))
    cache.ensure(COLUMNS)
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, runner.vocab, (rows,), generator=generator)
    positions = torch.full((rows,), COLUMNS - 1)
    part = slice(0, rows)
    step = fastest_ms(lambda: runner.decode(tokens, positions, cache, part))
    narrow = torch.randn(rows, runner.width, generator=generator).to(runner.dtype)
    wide = torch.randn(rows, 4 * runner.width, generator=generator).to(runner.dtype)

    def projections() -> None:
        for project in runner.projections:
            project.qkv(narrow), project.out(narrow), project.up(narrow), project.down(wide)
        runner._head(narrow)

    heads, dim = runner.heads, runner.head_dim
    qkv = torch.randn(rows, 3, heads, dim, generator=generator).to(runner.dtype)
    attend = runner.step_attention(positions, cache.columns)

    def attention() -> None:
        for layer in range(runner.layers):
            attend(qkv, cache.keys[layer, part], cache.values[layer, part])

    logits = torch.randn(rows, runner.vocab, generator=generator)
    params = RowParams(
        temperature=torch.full((rows,), 0.8),
        top_k=torch.full((rows,), 50),
        top_p=torch.ones(rows),
        penalty=torch.ones(rows),
    )
    draws: list[torch.Generator | None] = [row_generator(i) for i in range(rows)]
    sampling = fastest_ms(lambda: sample_next(logits, params, None, draws))
    projected, attended = fastest_ms(projections), fastest_ms(attention)
    read = _weight_bytes(runner, rows, weights)
    cached = 2 * runner.layers * rows * heads * cache.columns * dim * cache.keys.element_size()
    floor = (read + cached) / 1e9 / gb_s * 1e3
    return {
        "step_ms": round(step, 2),
        "projections_ms": round(projected, 2),
        "attention_ms": round(attended, 2),
        "other_ms": round(max(0.0, step - projected - attended), 2),
        "sampling_ms": round(sampling, 2),
        "attention": "native" if runner.native_attention is not None else "torch",
        "weights_mb": round(read / 1e6, 1),
        "kv_read_mb": round(cached / 1e6, 1),
        "bandwidth_floor_ms": round(floor, 2),
        "step_vs_floor": round(step / floor, 2),
        "tokens_per_s": round(rows * 1e3 / (step + sampling), 1),
        "floor_tokens_per_s": round(rows * 1e3 / floor, 1),
    }


def step_breakdown(variants: dict[str, tuple[LoadedModel, str]]) -> dict[str, Any]:
    """Per dtype name ("bf16", "int8", "bf16+int8", …: the model and its weights, "", "int8"
    or "bf16+int8"), per row count, the step's parts (see the module's doc), and the bandwidth
    they were set against."""
    gb_s = read_bandwidth_gb_s()
    out: dict[str, Any] = {"read_bandwidth_gb_per_s": round(gb_s, 1), "columns": COLUMNS}
    for name, (loaded, weights) in variants.items():
        runner = GPT2Runner(loaded.model, int8=weights == "int8", int8_rows=int8_rows_of(weights))
        out[name] = {str(rows): _rows(runner, rows, weights, gb_s) for rows in ROWS}
    return out
