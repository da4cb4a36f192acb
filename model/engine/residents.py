"""The model versions the engine holds, one `Batch` each (own model, KV cache and rows), and how
the waiting requests are shared out between them.

- the **active** version's batch serves requests that name no version, or a version that is
  not resident;
- **other resident** versions (`Engine.load_version`, an A/B candidate) serve the requests that
  name them;
- **draining** batches admit nothing: the old active one after a swap, a version after
  `unload_version`. Their running rows finish; then the engine releases them.

A version may be an adapter (model/engine/adapters.py): it is served by the batch of its base
model, which may serve other adapters and the base itself, all in the same steps. So several
versions can name one batch; a batch drains when no version names it any more, and an adapter
is unloaded when no version names it and no running row uses it.

The row budget (`ENGINE_MAX_BATCH`) is shared, not split: the rows of all batches together,
draining ones included, never exceed it. So an iteration (every batch stepped in turn) never
decodes more rows than one full batch would, and the admission estimate, measured per bucket of
total rows, stays honest. Each batch's cache holds the whole budget, so a version alone can use
every row. Rows go to waiting requests in queue order whatever version they name (FIFO across
versions), so each version gets rows in proportion to its share of the traffic. A request that
does not fit the rows left stops admission there, as with one version: nothing overtakes it. A
request that does not fit its own batch only (its row limit lowered after an out-of-memory
split) holds back the later requests of its version, never those of another.

Only the worker thread changes this set, between two steps; it changes `active` and `others`
under the engine's lock, which is also what the asyncio side holds when it reads them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Iterable

import torch

from model.backends.base import BackendError
from model.engine.batch import Batch
from model.engine.request import ActiveRequest

log = logging.getLogger(__name__)

Plan = list[tuple[ActiveRequest, Batch]]  # waiting requests, in queue order, with their batch


def settle_heap() -> None:
    """Collect, then move every object alive now (modules, the models, tokenizers: most of the
    heap) out of the garbage collector's reach. Python's full collections hold the GIL: over the
    ~353,000 objects of a loaded process one took 121 ms on the project's 2-core CPU (0 ms once
    frozen), stalling the event loop whenever one ran. Objects still die by reference counting;
    releasing a drained version unfreezes so that its model's cycles are collected."""
    gc.collect()
    gc.freeze()


class Residents:
    """The active batch, the other resident versions' batches and those draining."""

    def __init__(self, active: Batch, version: str | None = None) -> None:
        self.active = active
        self.active_version = version or active.loaded.version  # an adapter's, or the batch's
        self.others: dict[str, Batch] = {}  # version -> batch, in the order they were loaded
        self.draining: list[Batch] = []
        self._asked: dict[str, float] = {}  # version -> when a request last named it

    def last_asked(self, version: str) -> float:
        return self._asked.get(version, 0.0)

    def versions(self) -> tuple[str, ...]:
        """The versions a request may name, the active one first."""
        return (self.active_version, *self.others)

    def admitting(self) -> list[Batch]:
        return list(dict.fromkeys([self.active, *self.others.values()]))

    def batch_of(self, model_version: str) -> Batch | None:
        """The admitting batch whose model is `model_version` (a base adapters can join)."""
        return next((b for b in self.admitting() if b.loaded.version == model_version), None)

    def batches(self) -> list[Batch]:
        """Every batch the worker steps."""
        return [*self.admitting(), *self.draining]

    def serving(self, version: str | None) -> Batch:
        """The batch that serves a request naming `version` (None: the active version)."""
        return self.served(version)[0]

    def served(self, version: str | None) -> tuple[Batch, str]:
        """The batch and the version that serve a request naming `version`: that version when
        it is resident, else the active one."""
        if version is not None and version in self.others:
            return self.others[version], version
        return self.active, self.active_version

    def rows(self) -> int:
        return sum(len(batch.rows) for batch in self.batches())

    def rows_by_version(self) -> dict[str, int]:
        """Running rows per version: every resident version (0 when idle) and those draining."""
        counts = dict.fromkeys(self.versions(), 0)
        for batch in self.batches():
            for row in batch.rows:
                counts[row.owner.version] = counts.get(row.owner.version, 0) + 1
        return counts

    # ---- changes (worker thread, between steps) -------------------------------------------------

    def promote(self, batch: Batch, version: str | None = None) -> None:
        """Serve new requests from `version` (default: `batch`'s own model) on `batch` (just
        loaded, or resident already: no reload); the old active version stops being served
        (its batch drains unless another version names it). To keep it resident too, load it
        again."""
        old, old_version = self.active, self.active_version
        version = version or batch.loaded.version
        self.others.pop(version, None)
        self.draining = [b for b in self.draining if b is not batch]
        self.active, self.active_version = batch, version
        self._drain_if_unnamed(old)
        log.info(
            "serving new requests from model %s (running ones finish on %s)",
            version,
            old_version,
        )

    def add(self, batch: Batch, version: str | None = None) -> None:
        """Serve the requests naming `version` (default: `batch`'s own model) from `batch`; a
        version already resident keeps its batch (a new one is dropped unused)."""
        version = version or batch.loaded.version
        if version in self.versions():
            self._drain_if_unnamed(batch)
            return
        self.others[version] = batch
        self.draining = [b for b in self.draining if b is not batch]
        log.info("model %s resident beside %s", version, self.active_version)

    def remove(self, version: str) -> None:
        """Stop admitting to `version` (never the active one); its running rows finish."""
        batch = self.others.pop(version, None)
        if batch is not None:
            log.info("model %s unloading: its running requests finish first", version)
            self._drain_if_unnamed(batch)

    def _drain_if_unnamed(self, batch: Batch) -> None:
        """`batch` drains when no version names it any more."""
        named = batch is self.active or any(b is batch for b in self.others.values())
        if not named and batch not in self.draining:
            self.draining.append(batch)

    def drop_unused_adapters(self) -> None:
        """Unload the adapters that no version names and no running row uses."""
        named = set(self.versions())
        for batch in self.batches():
            for version in batch.drop_adapters(named):
                log.info("adapter %s unloaded from model %s", version, batch.loaded.version)

    def release_drained(self) -> None:
        """Drop the draining batches whose rows have all finished, and free their memory."""
        drained = [b for b in self.draining if not b.rows]
        if not drained:
            return
        self.draining = [b for b in self.draining if b.rows]
        device = drained[0].loaded.device
        for batch in drained:
            log.info("model %s drained: releasing its memory", batch.loaded.version)
        drained.clear()
        gc.unfreeze()  # the old model's objects were frozen with the rest: let them go
        settle_heap()
        if device.type == "cuda":
            torch.cuda.empty_cache()

    # ---- admission -----------------------------------------------------------------------------

    def plan(self, waiting: Iterable[ActiveRequest], max_rows: int) -> Plan:
        """The waiting requests that fit now, in queue order, each with the batch serving it:
        `max_rows` shared by every batch, each batch's own row limit (see the module doc)."""
        rows_left = max_rows - self.rows()
        room = {batch: batch.free_rows for batch in self.admitting()}  # batches not held back
        plan: Plan = []
        for active in waiting:
            if rows_left <= 0 or not room:
                break
            batch, active.version = self.served(active.request.version)
            self._asked[active.version] = time.monotonic()
            if batch not in room:
                continue  # behind an earlier request of its version that does not fit yet
            if active.samples > rows_left:
                break  # the shared budget cannot take it yet: nothing overtakes it
            if active.samples > room[batch]:
                del room[batch]
                continue
            plan.append((active, batch))
            rows_left -= active.samples
            room[batch] -= active.samples
        return plan


def by_batch(plan: Plan) -> dict[Batch, list[ActiveRequest]]:
    """The plan's requests grouped by the batch that serves them, queue order kept."""
    groups: dict[Batch, list[ActiveRequest]] = {}
    for active, batch in plan:
        groups.setdefault(batch, []).append(active)
    return groups


def resolve_change(future: asyncio.Future[None], error: BackendError | None) -> None:
    """Resolve the future of a swap, load or unload (on its loop) unless its caller gave up."""
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
