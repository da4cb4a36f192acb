"""CUDA graphs for the decode step.

On a GPU a decode step of GPT-2 124M is a few hundred small kernels, each launched from Python:
measured on an H100, ~6 ms per step at 1 row and at 32 rows alike, in fp32 and bf16, while the
GPU's own work is a fraction of a millisecond. A CUDA graph records the step's kernels once and
replays them with one launch.

A graph replays fixed shapes at fixed addresses, so:
- inputs go through static buffers (`tokens`, `positions`), and a step's rows are padded up to
  a bucket (1, 2, 4, … up to the batch's maximum); padding rows are free cache rows, which the
  step writes at column 0 (a row joining later is prefilled from column 0, so nothing of it is
  read);
- attention reads a bucket of columns (128, 256, 512, … up to the context), masked per row as in
  the eager step, so one graph serves many steps;
- the cache is allocated at its full length up front (it must never move): for GPT-2 124M and
  32 rows, 1.2 GB in bf16.
A graph is recorded the first time its (rows, columns) bucket is needed: one warm-up pass on a
side stream, then the capture. Both compute exactly what the step itself computes (the same
keys and values written at the same places), so recording mid-generation changes nothing.
Graphs are recorded per batch (one per model version) and freed with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from model.engine.gpt2 import GPT2Runner, KVCache

COLUMN_BUCKETS = (128, 256, 512, 1024, 2048, 4096)


def buckets(limit: int, start: int = 1) -> list[int]:
    """Powers of two from `start` below `limit`, then `limit` itself."""
    sizes, size = [], start
    while size < limit:
        sizes.append(size)
        size *= 2
    return [*sizes, limit]


class DecodeGraphs:
    """Decode steps for one runner and one cache, replayed from CUDA graphs (`record=False`
    runs the same padded, bucketed step eagerly: that is how the CPU tests check it)."""

    def __init__(self, runner: GPT2Runner, cache: KVCache, record: bool = True) -> None:
        cache.ensure(cache.limit)  # graphs hold the cache's addresses: it must never move
        self.runner = runner
        self.cache = cache
        rows = cache.keys.shape[1]
        device = runner.device
        self.tokens = torch.zeros(rows, dtype=torch.long, device=device)
        self.positions = torch.zeros(rows, dtype=torch.long, device=device)
        self.row_buckets = buckets(rows)
        self.column_buckets = sorted({min(c, cache.limit) for c in COLUMN_BUCKETS} | {cache.limit})
        self.record = record
        self._graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._pool = torch.cuda.graph_pool_handle() if record else None

    @property
    def recorded(self) -> int:
        return len(self._graphs)

    def run(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The logits (B, V) of one token per row for cache rows 0…B-1, like `runner.decode`."""
        count = tokens.shape[0]
        rows = next(b for b in self.row_buckets if b >= count)
        needed = int(positions.max()) + 1
        columns = next(c for c in self.column_buckets if c >= needed)
        self.tokens[:count] = tokens
        self.tokens[count:rows] = 0
        self.positions[:count] = positions
        self.positions[count:rows] = 0
        if not self.record:
            return self._step(rows, columns)[:count]
        entry = self._graphs.get((rows, columns))
        if entry is None:
            entry = self._graphs[rows, columns] = self._capture(rows, columns)
        graph, logits = entry
        graph.replay()
        return logits[:count].clone()  # the next replay overwrites the graph's output

    def _step(self, rows: int, columns: int) -> torch.Tensor:
        return self.runner.decode_columns(
            self.tokens[:rows], self.positions[:rows], self.cache, slice(0, rows), columns
        )

    def _capture(self, rows: int, columns: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        side = torch.cuda.Stream(self.runner.device)
        side.wait_stream(torch.cuda.current_stream(self.runner.device))
        with torch.cuda.stream(side):
            self._step(rows, columns)  # warm-up, required before capture
        torch.cuda.current_stream(self.runner.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            logits = self._step(rows, columns)
        return graph, logits
