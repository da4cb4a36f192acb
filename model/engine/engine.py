"""The generation engine: an asyncio-facing queue in front of a worker thread that owns the model.

Callers `submit` from the event loop and get an `EngineHandle` at once (or `Busy`). The worker
loops: apply pending swaps, loads and unloads; drop cancelled or expired waiting requests; admit
waiting requests while the row budget allows, each to the batch of its version (prefill); decode
one token for every row of every batch; retire finished rows. So requests join and leave
between steps (continuous batching) and nothing the worker does ever runs on the event loop.

One lock (`_cond`) guards the queue, the per-user counts and the batches; `submit` takes it on
the event loop, so the worker holds it only for bookkeeping: it tokenizes prompts and runs the
model outside it.

Versions (model/engine/residents.py): besides the active version, others can be resident (A/B
serving), each with its own batch, or, for an adapter version, on the batch of its base; a
request naming one is served by it, any other by the active one. A version is loaded on a
thread of its own that then ends (model/engine/loading.py), and the worker takes it in between
two steps (an adapter's stacks too are built there). Hot-swap: new requests go to the new
version's batch (a resident one is promoted without reloading) while rows already running
finish on the old model; an unloaded version's rows finish, and a draining batch's model is
released once it is empty.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable

import torch

from model.backends.base import (
    BackendError,
    Busy,
    Cancelled,
    GenerationRequest,
    GenerationResult,
    Queued,
    TimedOut,
)
from model.engine.admission import Admission
from model.engine.batch import Batch
from model.engine.config import EngineConfig
from model.engine.loading import Loader, Loading, Served
from model.engine.metrics import EngineMetrics, EngineStats
from model.engine.request import ActiveRequest, EngineHandle, tokenize_for
from model.engine.residents import Plan, Residents, by_batch, resolve_change, settle_heap
from model.versions import LoadedModel

log = logging.getLogger(__name__)

IDLE_WAIT_S = 1.0  # an idle worker wakes this often to log metrics and notice a shutdown
# a waiting request hears its queue position at most this often: a queue of hundreds moving
# every step would otherwise flood chats with edits and the event loop with events
POSITION_UPDATE_S = 2.0

Change = Callable[[], None]  # a change of the resident batches, applied by the worker


class Engine:
    """Continuous-batching GPT-2 generation for many concurrent async callers."""

    def __init__(
        self,
        config: EngineConfig,
        load: Loader,
        int8: bool = False,
        clock: Callable[[], float] = time.monotonic,
        int8_rows: int = 0,
    ) -> None:
        """`load(version, path)` gives a loaded model; `int8`: on CPU, serve it with int8
        weights (model/engine/linear.py; `ENGINE_CPU_DTYPE=int8`); `int8_rows`: on CPU, steps
        of at most this many rows by int8 weights beside the model's own (`bf16+int8`);
        `clock` paces the queue-position updates."""
        self.config = config
        self.admission = Admission(
            config.max_batch, config.max_wait_s, config.max_queue, config.max_per_user
        )
        self._clock = clock
        self._positions_told = -math.inf
        self.metrics = EngineMetrics()
        self._loading = Loading(config, load, int8, int8_rows, self.metrics, self.admission)
        self._cond = threading.Condition()
        self._waiting: deque[ActiveRequest] = deque()
        self._per_user: Counter[str] = Counter()
        self._residents: Residents | None = None  # set by start()
        self._admitting: list[ActiveRequest] = []  # being prefilled: a crash must fail them too
        # swaps, loads and unloads for the worker to apply, each with the future it resolves
        self._changes: list[tuple[Change, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._last_log = time.monotonic()

    # ---- asyncio side ----------------------------------------------------------------------------

    @property
    def residents(self) -> Residents:
        """The batches of the versions held (after `start`)."""
        if self._residents is None:
            raise RuntimeError("engine not started")
        return self._residents

    @property
    def loaded(self) -> LoadedModel:
        """The model that serves new requests."""
        with self._cond:
            return self.residents.active.loaded

    @property
    def resident_versions(self) -> tuple[str, ...]:
        """The versions a request may name now, the active one first (none before `start`)."""
        with self._cond:
            return self._residents.versions() if self._residents is not None else ()

    async def start(self, version: str, path: str) -> None:
        served = await self._loading.served(version, path, None)
        if served.stacks is not None:  # nothing else is stacked yet: they are current
            served.batch.add_adapter(version, served.stacks)
        self._residents = Residents(served.batch, version)
        self.metrics.model_version = version
        self._thread = threading.Thread(target=self._work, name="generation-engine", daemon=True)
        self._thread.start()
        settle_heap()

    async def close(self) -> None:
        """Stop: waiting and running requests end with a clear error; the worker exits."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        gc.unfreeze()

    def submit(self, request: GenerationRequest) -> EngineHandle:
        """Queue a request; raises `Busy` at once when the queue or the user's quota is full."""
        handle = EngineHandle(self._wake)
        active = ActiveRequest(request, handle, asyncio.get_running_loop(), on_end=self._ended)
        active.deadline = active.submitted + self.config.timeout_s
        with self._cond:  # the admission decision and the enqueueing, nothing slower
            if self._stopping or self._thread is None:
                raise BackendError("The generator is not running. Please retry in a moment.")
            self._admission_check(active)
            self._per_user[request.user] += 1
            self._waiting.append(active)
            self.admission.queued(active.work)
            active.position = position = len(self._waiting)
            self.metrics.queue_depth = len(self._waiting)
            self._cond.notify_all()
        # first in the handle: the worker's events reach it through this loop, after we return
        handle.put_event(Queued(position=position))
        return handle

    async def swap(self, version: str, path: str) -> None:
        """Serve new requests from `version`: as it is when it is resident (no reload, `path`
        unused: an A/B promotion), else loaded from `path` beside the current model (an
        adapter version over its base's batch). The old active version stops being served
        (its running rows finish on it); a batch no version names any more is released."""
        with self._cond:
            batch = self.residents.others.get(version)
        served = Served(version, batch) if batch else await self._served(version, path)
        await self._loading.settle(served, self.residents, Residents.promote, self._change)

    async def load_version(self, version: str, path: str) -> None:
        """Keep `version` (loaded from `path`) resident beside the active one, with a batch of
        its own or, for an adapter version, on its base's batch; requests naming it go to it
        once this returns. A no-op when it is resident."""
        if version in self.resident_versions:
            return
        served = await self._served(version, path)
        await self._loading.settle(served, self.residents, Residents.add, self._change)
        settle_heap()  # the new model's objects too stay out of full collections

    async def _served(self, version: str, path: str) -> Served:
        with self._cond:
            residents = self.residents
        return await self._loading.served(version, path, residents)

    async def unload_version(self, version: str) -> None:
        """Stop admitting to `version` (never the active one: then, as for a version not
        resident, a no-op); its running rows finish, then its model is released."""
        await self._change(lambda: self.residents.remove(version))

    def stats(self) -> EngineStats:
        return self.metrics.snapshot()

    def expected_wait_s(self, samples: int = 1) -> float:
        """Seconds until a request of `samples` rows submitted now would start decoding."""
        with self._cond:
            return self.admission.expected_wait_s(len(self._waiting), samples)

    def _admission_check(self, active: ActiveRequest) -> None:
        users_requests = self._per_user[active.request.user]
        try:
            self.admission.check(
                active.samples, len(self._waiting), users_requests, self.metrics.mean_latency()
            )
        except Busy:
            self.metrics.count("rejected")
            raise

    async def _change(self, change: Change) -> None:
        """Have the worker apply `change` between two steps; return once it has."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            if self._stopping or self._thread is None:
                raise BackendError("The generator is not running. Please retry in a moment.")
            self._changes.append((change, loop, future))
            self._cond.notify_all()
        await future

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _ended(self, active: ActiveRequest, result: GenerationResult | None) -> None:
        if result is not None:
            self.metrics.finished(result.latency_s, result.ttft_s)
        with self._cond:
            user = active.request.user
            self._per_user[user] -= 1
            if self._per_user[user] <= 0:
                del self._per_user[user]

    # ---- worker thread ---------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            with torch.inference_mode():  # every tensor the worker makes is an inference tensor
                while self._iterate():
                    pass
        except Exception:  # the worker must never die silently: fail everything, log why
            log.exception("generation engine worker crashed")
            self._fail_everything(BackendError("The generator stopped. Please try again later."))
            return
        self._fail_everything(BackendError("The generator is shutting down. Please retry soon."))

    def _has_work(self) -> bool:
        return bool(self._changes or self._waiting or self.residents.rows())

    def _iterate(self) -> bool:
        with self._cond:
            while not self._has_work() and not self._stopping:
                self._cond.wait(IDLE_WAIT_S)
                self._maybe_log()
            if self._stopping:
                return False
            self._apply_changes()
            self._drop_dead(time.perf_counter())
            candidates = self.residents.plan(self._waiting, self.config.max_batch)
        began = time.perf_counter()
        for batch, requests in by_batch(candidates).items():  # each for its version's tokenizer,
            tokenize_for(requests, batch.loaded)  # outside the lock that submit() waits on
        with self._cond:
            admitted = self._pop_admissible(candidates)
            self._tell_positions()
        rows = self.residents.rows() + sum(active.samples for active, _ in admitted)
        self._admitting = [active for active, _ in admitted]  # out of the queue, not yet rows
        for batch, requests in by_batch(admitted).items():
            batch.admit(requests)
        self._admitting = []
        running = self.residents.batches()
        for stepping in running:
            self._step(stepping)
        self.admission.throughput.record(rows, time.perf_counter() - began)
        self.residents.release_drained()
        self.residents.drop_unused_adapters()
        self._record_metrics()
        return True

    def _apply_changes(self) -> None:
        for change, loop, future in self._changes:
            try:
                change()
            except Exception as error:  # the worker serves on; the caller hears why
                log.exception("a swap, load or unload failed")
                failed = BackendError(f"The model change failed: {error}")
                loop.call_soon_threadsafe(resolve_change, future, failed)
                continue
            self.metrics.model_version = self.residents.active_version  # before it returns
            loop.call_soon_threadsafe(resolve_change, future, None)
        self._changes.clear()

    def _drop_dead(self, now: float) -> None:
        """Waiting requests that were cancelled or ran out of time leave the queue."""
        for active in list(self._waiting):
            if self._ended_if_dead(active, now):
                self._waiting.remove(active)
                self.admission.left_queue(active.work)

    def _ended_if_dead(self, active: ActiveRequest, now: float) -> bool:
        """End `active` if it was cancelled or ran out of time (counted); whether it was."""
        if active.handle.cancel_requested:
            self.metrics.count("cancelled")
            active.fail(Cancelled("The request was cancelled."))
        elif active.expired(now):
            self.metrics.count("failed")
            active.fail(TimedOut(_timeout_message(self.config.timeout_s)))
        else:
            return False
        return True

    def _pop_admissible(self, candidates: Plan) -> Plan:
        """Take the candidates (still queued: only the worker removes from the queue) from the
        queue, in order, while the prefill token budget allows (the first one always)."""
        admitted: Plan = []
        tokens = 0
        for active, batch in candidates:
            cost = len(active.prompt_ids)
            if admitted and tokens + cost > self.config.max_prefill_tokens:
                break
            admitted.append((active, batch))
            tokens += cost
        taken = {id(active) for active, _ in admitted}
        left = len(taken)
        while left and id(self._waiting[0]) in taken:  # the usual case: the queue's head
            self._waiting.popleft()
            left -= 1
        if left:  # some passed a request held back by its own version's batch
            self._waiting = deque(a for a in self._waiting if id(a) not in taken)
        for active, _ in admitted:
            self.admission.left_queue(active.work)
        return admitted

    def _tell_positions(self) -> None:
        now = self._clock()
        if now - self._positions_told < POSITION_UPDATE_S:
            return
        self._positions_told = now
        for index, active in enumerate(self._waiting, start=1):
            if active.position != index:
                active.position = index
                active.emit(Queued(position=index))

    def _step(self, batch: Batch) -> None:
        now = time.perf_counter()
        for row in batch.rows:
            if not row.owner.done:
                self._ended_if_dead(row.owner, now)
        batch.retire()
        try:
            batch.step()
        except torch.OutOfMemoryError:
            log.error("out of memory on a single row: failing the batch's requests")
            self.metrics.count("failed", len({id(r.owner) for r in batch.rows}))
            batch.fail_all(BackendError("The model ran out of memory. Try a shorter request."))
        batch.retire()

    def _record_metrics(self) -> None:
        residents = self.residents
        batches = residents.batches()
        produced = sum(b.tokens_out for b in batches)
        for b in batches:
            b.tokens_out = 0
        if produced:
            self.metrics.tokens(produced)
        self.metrics.queue_depth = len(self._waiting)
        self.metrics.running_rows = rows = residents.rows()
        self.metrics.running_rows_by_version = residents.rows_by_version()
        self.metrics.running_requests = len({id(r.owner) for b in batches for r in b.rows})
        with self._cond:  # rows of every version are work ahead of a new request
            self.admission.running_tokens = sum(r.tokens_left for b in batches for r in b.rows)
            shared = max(0, self.config.max_batch - rows)
            self.admission.free_rows = min(shared, residents.active.free_rows)
        self._maybe_log()

    def _maybe_log(self) -> None:
        interval = self.config.metrics_log_interval_s
        now = time.monotonic()
        if interval > 0 and now - self._last_log >= interval:
            self._last_log = now
            log.info("engine metrics: %s", self.metrics.snapshot().as_dict())

    def _fail_everything(self, error: BackendError) -> None:
        with self._cond:
            waiting = list(self._waiting)
            self._waiting.clear()
            self.admission.waiting_tokens = 0
            changes, self._changes = self._changes, []
        for active in [*waiting, *self._admitting]:
            active.fail(error)
        for batch in self.residents.batches():
            batch.fail_all(error)
        for _, loop, future in changes:  # a swap, load or unload that was still to come
            loop.call_soon_threadsafe(resolve_change, future, error)


def _timeout_message(limit_s: float) -> str:
    return f"The request took longer than {limit_s:.0f} s and was stopped. Please try again."
