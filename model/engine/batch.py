"""The running batch of one model version: rows join (prefill) and leave between decode steps.

A row is one sample of one request. Rows stay contiguous in the cache (a leaving row is
replaced by the last one), so a decode step works on plain slices, never on gathered copies.

The batch owns its KV cache and, on CUDA, the graphs of its decode step (model/engine/graphs.py):
a step over rows 0… replays them, any other (the second half of an out-of-memory split) runs
eagerly.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from model.backends.base import BackendError
from model.engine.adapters import AdapterStack, LoraStep, Stacked
from model.engine.detok import IncrementalDetokenizer
from model.engine.gpt2 import GPT2Runner
from model.engine.graphs import DecodeGraphs
from model.engine.request import ActiveRequest
from model.engine.sampling import RowParams, row_generator, sample_next
from model.versions import LoadedModel

log = logging.getLogger(__name__)

RECOVER_AFTER_STEPS = 256  # after an OOM split, steps without OOM before the row limit doubles
OUT_OF_MEMORY = (
    "The model ran out of memory for this request. Try a shorter prompt or fewer samples."
)


@dataclass
class Row:
    owner: ActiveRequest
    sample: int
    generator: torch.Generator | None  # None = greedy
    detok: IncrementalDetokenizer
    position: int  # where the next token goes = tokens in the cache for this row
    last_token: int = 0
    generated: int = 0
    reason: str = ""  # set when the row is done: "eos" | "length" | "cancelled"

    @property
    def tokens_left(self) -> int:
        """Tokens this row may still generate (an upper bound: it may stop at EOS)."""
        return max(0, self.owner.request.params.max_new_tokens - self.generated)


class Batch:
    """Rows decoding together on one model version."""

    def __init__(
        self,
        loaded: LoadedModel,
        max_rows: int,
        on_oom: Callable[[], None] = lambda: None,
        prepack: bool = True,
        cuda_graphs: bool = True,
        int8: bool = False,
        native_attention: bool = True,
        native_int8: bool = True,
        int8_rows: int = 0,
    ) -> None:
        self.loaded = loaded
        self.runner = GPT2Runner(
            loaded.model, prepack, int8, native_attention, native_int8, int8_rows
        )
        self.max_rows = max_rows
        self.row_limit = max_rows  # lowered after an out-of-memory split
        self.cache = self.runner.new_cache(max_rows)
        use_graphs = cuda_graphs and loaded.device.type == "cuda"
        self.graphs = self._new_decode_graphs() if use_graphs else None
        # each row's context ids, for the repetition penalty (padded with the row's first id)
        self.history = torch.zeros(
            max_rows, self.runner.context, dtype=torch.long, device=loaded.device
        )
        self.rows: list[Row] = []
        self._params: RowParams | None = None
        self.adapters = AdapterStack(self.runner.layers, self.runner.dtype, loaded.device)
        self._lora: LoraStep | None = None  # the rows' adapters, kept while the rows stay
        self._lora_stale = True
        self._steps_since_oom = 0
        self._on_oom = on_oom
        self.eos = loaded.tokenizer.eos_token_id
        self.tokens_out = 0  # tokens generated so far (metrics)

    @property
    def free_rows(self) -> int:
        return max(0, self.row_limit - len(self.rows))

    def time_full_step(self, tries: int = 3) -> float:
        """Seconds of an eager decode step over every row of the cache (the fastest of `tries`
        after a warm-up: on a shared machine one step may wait for the CPU), for a first
        estimate of the engine's rate. Free rows only: it writes column 0, which a joining
        row's prefill overwrites."""
        device = self.loaded.device
        tokens = torch.zeros(self.max_rows, dtype=torch.long, device=device)
        rows = slice(0, self.max_rows)
        self.runner.decode(tokens, tokens, self.cache, rows)
        fastest = math.inf
        for _ in range(tries):
            began = time.perf_counter()
            self.runner.decode(tokens, tokens, self.cache, rows)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            fastest = min(fastest, time.perf_counter() - began)
        return fastest

    def _new_decode_graphs(self) -> DecodeGraphs:
        """CUDA graphs of this batch's decode step, recorded as its buckets are first needed."""
        self.cache.ensure(self.cache.limit)  # graphs hold the cache's addresses: it must never move
        return DecodeGraphs(self._padded_step, self.max_rows, self.cache.limit, self.loaded.device)

    # ---- adapters (model/engine/adapters.py) ---------------------------------------------------

    def add_adapter(self, version: str, prepared: Stacked) -> bool:
        """Serve adapter `version` from this batch (rows naming it add its update), with the
        stacks `self.adapters.prepare` built for it; False when they are out of date."""
        if not self.adapters.install(prepared, version):
            return False
        self._lora_stale = True
        return True

    def drop_adapters(self, keep: set[str]) -> list[str]:
        """Unload the adapters not in `keep` that no running row uses; those unloaded."""
        unnamed = [v for v in self.adapters.versions if v not in keep]
        if not unnamed:
            return []
        used = {row.owner.version for row in self.rows}
        gone = [v for v in unnamed if v not in used]
        if gone:
            self.adapters.remove(gone)
            self._lora_stale = True
        return gone

    def _rows_lora(self) -> LoraStep | None:
        if self._lora_stale:
            slots = [self.adapters.slot(row.owner.version) for row in self.rows]
            self._lora = self.adapters.step(slots)
            self._lora_stale = False
        return self._lora

    # ---- joining -------------------------------------------------------------------------------

    def admit(self, requests: list[ActiveRequest]) -> None:
        """Prefill `requests` and add one row per sample (each with its first token)."""
        if not requests:
            return
        try:
            self._prefill_group(requests)
        except torch.OutOfMemoryError:
            if len(requests) == 1:
                requests[0].fail(BackendError(OUT_OF_MEMORY))
                return
            self._shrink_after_oom(f"prefill of {len(requests)} requests")
            middle = len(requests) // 2
            self.admit(requests[:middle])
            self.admit(requests[middle:])

    def _prefill_group(self, requests: list[ActiveRequest]) -> None:
        device = self.loaded.device
        first = len(self.rows)
        lora = self.adapters.step([self.adapters.slot(r.version) for r in requests])
        logits = self.runner.prefill([r.prompt_ids for r in requests], self.cache, first, lora)
        # sample 0 of request i sits at row first+i; its other samples copy that cache row
        order = [(i, r, 0) for i, r in enumerate(requests)]
        order += [(i, r, s) for i, r in enumerate(requests) for s in range(1, r.samples)]
        for offset, (source, request, sample) in enumerate(order):
            target = first + offset
            if sample > 0:
                self.cache.move_row(first + source, target)
            prompt = request.prompt_ids
            self.history[target, : len(prompt)] = torch.tensor(prompt, device=device)
            self.history[target, len(prompt) :] = prompt[0]
            params = request.request.params
            greedy = params.temperature == 0
            generator = None if greedy else row_generator(params.sample_seed(sample))
            detok = IncrementalDetokenizer(self.loaded.tokenizer)
            self.rows.append(
                Row(request, sample, generator, detok, position=len(request.prompt_ids))
            )
            request.rows_left += 1
        self._params, self._lora_stale = None, True
        row_logits = logits[torch.tensor([i for i, _, _ in order], device=device)]  # (R, V)
        self._sample_next_tokens(first, row_logits)

    # ---- decoding ------------------------------------------------------------------------------

    def step(self) -> None:
        """Decode one token for every row."""
        if not self.rows:
            return
        device = self.loaded.device
        if self.graphs is None:  # grow for every row here, copying only the rows in use
            self.cache.ensure(max(r.position for r in self.rows) + 1, len(self.rows))
        tokens = torch.tensor([r.last_token for r in self.rows], device=device)
        positions = torch.tensor([r.position for r in self.rows], device=device)
        logits = self._decode_splitting_on_oom(tokens, positions, 0, len(self.rows))
        for row in self.rows:
            row.position += 1
        self._sample_next_tokens(0, logits)
        self._steps_since_oom += 1
        if self.row_limit < self.max_rows and self._steps_since_oom >= RECOVER_AFTER_STEPS:
            self.row_limit = min(self.max_rows, self.row_limit * 2)
            self._steps_since_oom = 0

    def decode_rows(
        self, tokens: torch.Tensor, positions: torch.Tensor, rows: slice
    ) -> torch.Tensor:
        """One decode step of cache `rows`: replayed from the batch's CUDA graphs when it has
        them (they cover rows 0…) and no row has an adapter, else eager. Logits (B, V)."""
        lora = self._rows_lora()
        if lora is not None:
            return self.runner.decode(tokens, positions, self.cache, rows, lora.rows(rows))
        if self.graphs is not None and rows.start == 0:
            return self.graphs.run(tokens, positions)
        return self.runner.decode(tokens, positions, self.cache, rows)

    def _padded_step(
        self, tokens: torch.Tensor, positions: torch.Tensor, columns: int
    ) -> torch.Tensor:
        """The step the graphs record: rows 0…R-1, exactly `columns` cache columns."""
        rows = slice(0, tokens.shape[0])
        return self.runner.decode_columns(tokens, positions, self.cache, rows, columns)

    def _decode_splitting_on_oom(
        self, tokens: torch.Tensor, positions: torch.Tensor, start: int, stop: int
    ) -> torch.Tensor:
        try:
            return self.decode_rows(tokens[start:stop], positions[start:stop], slice(start, stop))
        except torch.OutOfMemoryError:
            if stop - start == 1:
                raise
            self._shrink_after_oom(f"decode of {stop - start} rows")
            middle = (start + stop) // 2
            return torch.cat(
                [
                    self._decode_splitting_on_oom(tokens, positions, start, middle),
                    self._decode_splitting_on_oom(tokens, positions, middle, stop),
                ]
            )

    def _shrink_after_oom(self, what: str) -> None:
        """After an out-of-memory error: halve the row limit, log, free the allocator's cached
        blocks and report it (`on_oom`)."""
        self.row_limit = max(1, min(self.row_limit, len(self.rows)) // 2)
        self._steps_since_oom = 0
        log.warning(
            "out of memory during %s: splitting the batch and retrying (row limit now %d)",
            what,
            self.row_limit,
        )
        if self.loaded.device.type == "cuda":
            torch.cuda.empty_cache()
        self._on_oom()

    def _row_params(self) -> RowParams:
        if self._params is None or self._params.temperature.shape[0] != len(self.rows):
            device = self.loaded.device
            params = [r.owner.request.params for r in self.rows]
            self._params = RowParams(
                temperature=torch.tensor([p.temperature for p in params], device=device),
                top_k=torch.tensor([p.top_k for p in params], device=device),
                top_p=torch.tensor([p.top_p for p in params], device=device),
                penalty=torch.tensor([p.repetition_penalty for p in params], device=device),
            )
        return self._params

    def _sample_next_tokens(self, first: int, logits: torch.Tensor) -> None:
        """Sample the next token of rows first… from their `logits` and stream the text."""
        rows = self.rows[first:]
        if not rows:
            return
        params = self._row_params()
        part = RowParams(
            *(t[first:] for t in (params.temperature, params.top_k, params.top_p, params.penalty))
        )
        width = max(r.position for r in rows)  # context columns 0…position-1 of every row
        context = self.history[first : len(self.rows), :width]
        tokens = sample_next(logits, part, context, [r.generator for r in rows])
        limit = self.runner.context
        room = [(first + i, r.position) for i, r in enumerate(rows) if r.position < limit]
        if room:
            where = torch.tensor(room, device=tokens.device)
            self.history[where[:, 0], where[:, 1]] = tokens[where[:, 0] - first]
        for row, token in zip(rows, tokens.tolist(), strict=True):
            if token == self.eos:
                row.reason = "eos"
                continue
            row.last_token = token
            row.generated += 1
            self.tokens_out += 1
            row.owner.chunk(row.sample, row.detok.push(token))
            full = row.position >= self.runner.context  # no room left for the next token
            if full or row.generated >= row.owner.request.params.max_new_tokens:
                row.reason = "length"

    # ---- leaving -------------------------------------------------------------------------------

    def retire(self) -> list[ActiveRequest]:
        """Remove rows that are done (finished, cancelled or failed); the requests completed."""
        completed = []
        leaving = [i for i, r in enumerate(self.rows) if r.reason or r.owner.done]
        for index in reversed(leaving):
            row, last = self.rows[index], len(self.rows) - 1
            if index != last:
                self.cache.move_row(last, index)
                self.history[index] = self.history[last]
                self.rows[index] = self.rows[last]
            self.rows.pop()
            if not row.owner.done:
                row.owner.chunk(row.sample, row.detok.flush())
                if row.owner.sample_finished(row.sample, row.generated, row.reason):
                    completed.append(row.owner)
        if leaving:
            self._params, self._lora_stale = None, True
            if self.graphs is None:  # graphs hold the cache's addresses: it never moves
                self.cache.fit(max((r.position for r in self.rows), default=0) + 1, len(self.rows))
        return completed

    def fail_all(self, error: BackendError) -> None:
        for row in self.rows:
            row.owner.fail(error)
        self.rows.clear()
        self._params, self._lora_stale = None, True
