"""What the engine loads to serve a version: a batch of its own for a full version; for an
adapter version (model/engine/adapters.py) its weights, over the batch of its base, resident
already or loaded with it. Everything here runs off the worker thread (each load on a thread of
its own, model/threads.py), so running requests keep decoding meanwhile; the worker only
attaches the result between two steps."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from model.engine.adapters import Adapter, Stacked, read_adapter
from model.engine.admission import Admission
from model.engine.batch import Batch
from model.engine.config import EngineConfig
from model.engine.metrics import EngineMetrics
from model.engine.residents import Residents
from model.threads import to_own_thread
from model.versions import LoadedModel, adapter_base

log = logging.getLogger(__name__)

Loader = Callable[[str, str], LoadedModel]


@dataclass
class Served:
    """A version ready to serve: its batch and, for an adapter version, the adapter and the
    batch's stacks with it added (`adapter` None: the batch's own model)."""

    version: str
    batch: Batch
    adapter: Adapter | None = None
    stacks: Stacked | None = None
    attached: bool = False  # set by `attach`: False when the stacks were out of date


class Loading:
    """Builds batches and reads adapters with the engine's settings."""

    def __init__(
        self,
        config: EngineConfig,
        load: Loader,
        int8: bool,
        int8_rows: int,
        metrics: EngineMetrics,
        admission: Admission,
    ) -> None:
        self.config, self._load = config, load
        self.int8, self.int8_rows = int8, int8_rows
        self.metrics, self.admission = metrics, admission

    async def served(self, version: str, path: str, residents: Residents | None) -> Served:
        """Load what serving `version` from `path` needs: an adapter version joins its base's
        resident batch when there is one (`residents.batch_of`, read by the caller's lock
        holder: a stale answer only means the base is loaded again)."""
        base = adapter_base(path)
        if base is None:
            return Served(version, await to_own_thread(self.batch, version, path))
        batch = residents.batch_of(base.version) if residents is not None else None
        if batch is None:
            batch = await to_own_thread(self.batch, base.version, base.path)
        adapter = await to_own_thread(self.adapter, version, path, batch)
        return Served(version, batch, adapter, await to_own_thread(batch.adapters.prepare, adapter))

    async def settle(
        self,
        served: Served,
        residents: Residents,
        serve: Callable[[Residents, Batch, str], None],
        change: Callable[[Callable[[], None]], Awaitable[None]],
    ) -> None:
        """Have the worker (`change`) serve `served` with `serve` (promote or add), its adapter
        attached; when another adapter was attached since its stacks were built, build them
        again here, off the worker, and retry."""

        def attached() -> None:
            if attach(residents, served, self.config.max_adapters):
                serve(residents, served.batch, served.version)

        await change(attached)
        while not served.attached:
            assert served.adapter is not None  # only an adapter's stacks go out of date
            served.stacks = await to_own_thread(served.batch.adapters.prepare, served.adapter)
            await change(attached)

    def batch(self, version: str, path: str) -> Batch:
        """Load a full version and build everything it needs to serve."""
        loaded = self._load(version, path)
        config = self.config
        batch = Batch(
            loaded,
            config.max_batch,
            lambda: self.metrics.count("oom_splits"),
            config.cpu_prepack,
            config.cuda_graphs,
            self.int8,
            config.cpu_native_attention,
            config.cpu_native_int8,
            self.int8_rows,
        )
        self.admission.throughput.seed(config.max_batch, batch.time_full_step)
        return batch

    def adapter(self, version: str, path: str, batch: Batch) -> Adapter:
        began = time.perf_counter()
        runner = batch.runner
        adapter = read_adapter(version, path, runner.layers, runner.dtype, runner.device)
        log.info(
            "read adapter %s (rank %d, %.1f MB) over %s in %.0f ms",
            version,
            adapter.rank,
            adapter.bytes() / 1e6,
            batch.loaded.version,
            (time.perf_counter() - began) * 1000,
        )
        return adapter


def attach(residents: Residents, served: Served, max_adapters: int) -> bool:
    """Put `served`'s adapter on its batch (worker thread, between steps), first unloading the
    adapter versions asked for least recently beyond `max_adapters` (their running rows
    finish on them). False when its stacks are out of date (`Loading.settle` builds them
    again)."""
    batch, stacks = served.batch, served.stacks
    if stacks is None or served.version in batch.adapters:
        served.attached = True
        return True
    resident = [v for v, b in residents.others.items() if b is batch and v in batch.adapters]
    while len(batch.adapters) >= max_adapters and resident:
        oldest = min(resident, key=residents.last_asked)
        resident.remove(oldest)
        log.info("adapter %s unloaded to make room (ENGINE_MAX_ADAPTERS=%d)", oldest, max_adapters)
        residents.remove(oldest)
        residents.drop_unused_adapters()
    served.attached = batch.add_adapter(served.version, stacks)
    return served.attached
