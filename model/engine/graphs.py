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
- the memory the step reads and writes must never move: its owner allocates the KV cache at
  full length before wrapping the step (for GPT-2 124M and 32 rows, 1.2 GB in bf16).
A graph is recorded the first time its (rows, columns) bucket is needed: one warm-up pass on a
side stream, then the capture. Both compute exactly what the step itself computes (the same
keys and values written at the same places), so recording mid-generation changes nothing.

`DecodeGraphs` knows nothing of the model or the cache: it wraps a `PaddedStep` callable. The
batch (model/engine/batch.py) owns one cache and the graphs of its step, and frees both with it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

COLUMN_BUCKETS = (128, 256, 512, 1024, 2048, 4096)

# A decode step over cache rows 0…R-1 that reads exactly `columns` cache columns:
# (tokens (R,), positions (R,), columns) -> logits (R, V)
PaddedStep = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def buckets(limit: int, start: int = 1) -> list[int]:
    """Powers of two from `start` below `limit`, then `limit` itself."""
    sizes, size = [], start
    while size < limit:
        sizes.append(size)
        size *= 2
    return [*sizes, limit]


class DecodeGraphs:
    """Replays `step` from CUDA graphs, one per (rows, columns) bucket (`record=False` runs the
    same padded, bucketed step eagerly: that is how the CPU tests check it).

    `max_rows` and `max_columns` are the cache's rows and its full length (the context)."""

    def __init__(
        self,
        step: PaddedStep,
        max_rows: int,
        max_columns: int,
        device: torch.device,
        record: bool = True,
    ) -> None:
        self.step = step
        self.device = device
        self.tokens = torch.zeros(max_rows, dtype=torch.long, device=device)
        self.positions = torch.zeros(max_rows, dtype=torch.long, device=device)
        self.row_buckets = buckets(max_rows)
        self.column_buckets = sorted({min(c, max_columns) for c in COLUMN_BUCKETS} | {max_columns})
        self.record = record
        self._graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._pool = torch.cuda.graph_pool_handle() if record else None

    @property
    def recorded(self) -> int:
        return len(self._graphs)

    def run(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The logits (B, V) of one token per row for cache rows 0…B-1, like the eager step."""
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
        return self.step(self.tokens[:rows], self.positions[:rows], columns)

    def _capture(self, rows: int, columns: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            self._step(rows, columns)  # warm-up, required before capture
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            logits = self._step(rows, columns)
        return graph, logits
