"""The generation engine: an asyncio-facing queue in front of a worker thread that owns the model.

Callers `submit` from the event loop and get an `EngineHandle` at once (or `Busy`). The worker
loops: take a pending swap, drop cancelled or expired waiting requests, admit as many waiting
requests as the batch has free rows (prefill), decode one token for every row, retire finished
rows. So requests join and leave between steps (continuous batching) and nothing the worker
does ever runs on the event loop.

One lock (`_cond`) guards the queue, the per-user counts and the batches; `submit` takes it on
the event loop, so the worker holds it only for bookkeeping: it tokenizes prompts and runs the
model outside it.

Hot-swap: the new version is loaded beside the old one; from then on new requests go to a new
batch on the new model, while rows already running finish on the old model (both batches are
stepped in turn). When the old batch is empty, its model is dropped and its memory released.
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
from model.engine.metrics import EngineMetrics, EngineStats
from model.engine.request import ActiveRequest, EngineHandle, tokenize_for
from model.versions import LoadedModel

log = logging.getLogger(__name__)

IDLE_WAIT_S = 1.0  # an idle worker wakes this often to log metrics and notice a shutdown
# a waiting request hears its queue position at most this often: a queue of hundreds moving
# every step would otherwise flood chats with edits and the event loop with events
POSITION_UPDATE_S = 2.0

Loader = Callable[[str, str], LoadedModel]


def settle_heap() -> None:
    """Collect, then move every object alive now (modules, the model, tokenizers: most of the
    heap) out of the garbage collector's reach. Python's full collections hold the GIL: over the
    ~353,000 objects of a loaded process one took 121 ms on the project's 2-core CPU (0 ms once
    frozen), stalling the event loop whenever one ran. Objects still die by reference counting;
    a swap unfreezes so that the old model's cycles are collected."""
    gc.collect()
    gc.freeze()


class Engine:
    """Continuous-batching GPT-2 generation for many concurrent async callers."""

    def __init__(
        self,
        config: EngineConfig,
        load: Loader,
        int8: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`load(version, path)` gives a loaded model; `int8`: on CPU, serve it with int8
        weights (model/engine/linear.py; `ENGINE_CPU_DTYPE=int8`, the model loaded in fp32);
        `clock` paces the queue-position updates."""
        self.config = config
        self.int8 = int8
        self.admission = Admission(
            config.max_batch, config.max_wait_s, config.max_queue, config.max_per_user
        )
        self._clock = clock
        self._positions_told = -math.inf
        self.metrics = EngineMetrics()
        self._load = load
        self._cond = threading.Condition()
        self._waiting: deque[ActiveRequest] = deque()
        self._per_user: Counter[str] = Counter()
        self._batch: Batch | None = None
        self._draining: list[Batch] = []
        self._pending: Batch | None = None  # the next version, ready to serve
        self._swap_done: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._last_log = time.monotonic()

    # ---- asyncio side ----------------------------------------------------------------------------

    @property
    def loaded(self) -> LoadedModel:
        """The model that serves new requests."""
        with self._cond:
            batch = self._pending or self._batch
            model = batch.loaded if batch else None
        if model is None:
            raise RuntimeError("engine not started")
        return model

    async def start(self, version: str, path: str) -> None:
        self._batch = await asyncio.to_thread(self._load_batch, version, path)
        self.metrics.model_version = self._batch.loaded.version
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
        """Load `version` from `path` beside the current model and serve new requests from it."""
        batch = await asyncio.to_thread(self._load_batch, version, path)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._cond:
            self._pending = batch
            self._swap_done.append((asyncio.get_running_loop(), future))
            self._cond.notify_all()
        await future  # resolved by the worker once new requests go to the new model

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

    def _load_batch(self, version: str, path: str) -> Batch:
        """Load a version and build everything it needs to serve (off the worker thread, so
        running requests keep decoding meanwhile)."""
        loaded = self._load(version, path)
        batch = Batch(
            loaded,
            self.config.max_batch,
            self._count_oom,
            self.config.cpu_prepack,
            self.config.cuda_graphs,
            self.int8,
        )
        self.admission.throughput.seed(self.config.max_batch, batch.time_full_step())
        return batch

    def _count_oom(self) -> None:
        self.metrics.count("oom_splits")

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
        running = any(b.rows for b in [self._batch, *self._draining] if b is not None)
        return running or bool(self._waiting) or self._pending is not None

    def _iterate(self) -> bool:
        with self._cond:
            while not self._has_work() and not self._stopping:
                self._cond.wait(IDLE_WAIT_S)
                self._maybe_log()
            if self._stopping:
                return False
            self._take_swap()
            self._drop_dead(time.perf_counter())
            batch = self._batch
            assert batch is not None
            candidates = self._admission_candidates(batch)
        began = time.perf_counter()
        tokenize_for(candidates, batch.loaded)  # outside the lock that submit() waits on
        with self._cond:
            admitted = self._pop_admissible(batch)
            self._tell_positions()
        batch.admit(admitted)
        running = [batch, *self._draining]
        rows = sum(len(b.rows) for b in running)
        for stepping in running:
            self._step(stepping)
        self.admission.throughput.record(rows, time.perf_counter() - began)
        self._release_drained()
        self._record_metrics()
        return True

    def _take_swap(self) -> None:
        if self._pending is None:
            return
        assert self._batch is not None
        self._draining.append(self._batch)
        self._batch = self._pending
        self.metrics.model_version = self._batch.loaded.version
        log.info(
            "serving new requests from model %s (running ones finish on %s)",
            self._batch.loaded.version,
            self._draining[-1].loaded.version,
        )
        self._pending = None
        for loop, future in self._swap_done:
            loop.call_soon_threadsafe(_resolve, future)
        self._swap_done.clear()

    def _drop_dead(self, now: float) -> None:
        """Waiting requests that were cancelled or ran out of time leave the queue."""
        for active in list(self._waiting):
            if active.handle.cancel_requested:
                self._waiting.remove(active)
                self.admission.left_queue(active.work)
                self.metrics.count("cancelled")
                active.fail(Cancelled("The request was cancelled."))
            elif active.expired(now):
                self._waiting.remove(active)
                self.admission.left_queue(active.work)
                self.metrics.count("failed")
                active.fail(TimedOut(_timeout_message(self.config.timeout_s)))

    def _admission_candidates(self, batch: Batch) -> list[ActiveRequest]:
        """The head of the queue that fits the batch's free rows: all that the next
        `_pop_admissible` can take (only the worker removes from the queue, so it stays)."""
        candidates: list[ActiveRequest] = []
        rows = batch.free_rows
        for active in self._waiting:
            if active.samples > rows:
                break
            candidates.append(active)
            rows -= active.samples
        return candidates

    def _pop_admissible(self, batch: Batch) -> list[ActiveRequest]:
        """Take from the queue's head what fits the free rows and the prefill token budget."""
        admitted: list[ActiveRequest] = []
        rows = batch.free_rows
        tokens = 0
        while self._waiting:
            active = self._waiting[0]
            if active.samples > rows or active.version != batch.loaded.version:
                break  # too big for the free rows, or queued after the candidates
            cost = len(active.prompt_ids)
            if admitted and tokens + cost > self.config.max_prefill_tokens:
                break
            self._waiting.popleft()
            self.admission.left_queue(active.work)
            admitted.append(active)
            rows -= active.samples
            tokens += cost
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
            owner = row.owner
            if owner.done:
                continue
            if owner.handle.cancel_requested:
                self.metrics.count("cancelled")
                owner.fail(Cancelled("The request was cancelled."))
            elif owner.expired(now):
                self.metrics.count("failed")
                owner.fail(TimedOut(_timeout_message(self.config.timeout_s)))
        batch.retire()
        try:
            batch.step()
        except torch.OutOfMemoryError:
            log.error("out of memory on a single row: failing the batch's requests")
            self.metrics.count("failed", len({id(r.owner) for r in batch.rows}))
            batch.fail_all(BackendError("The model ran out of memory. Try a shorter request."))
        batch.retire()

    def _release_drained(self) -> None:
        drained = [b for b in self._draining if not b.rows]
        if not drained:
            return
        self._draining = [b for b in self._draining if b.rows]
        device = drained[0].loaded.device
        for batch in drained:
            log.info("model %s drained: releasing its memory", batch.loaded.version)
        drained.clear()
        gc.unfreeze()  # the old model's objects were frozen with the rest: let them go
        settle_heap()
        if device.type == "cuda":
            torch.cuda.empty_cache()

    def _record_metrics(self) -> None:
        batches = [b for b in [self._batch, *self._draining] if b is not None]
        produced = sum(b.tokens_out for b in batches)
        for b in batches:
            b.tokens_out = 0
        if produced:
            self.metrics.tokens(produced)
        self.metrics.queue_depth = len(self._waiting)
        self.metrics.running_rows = sum(len(b.rows) for b in batches)
        self.metrics.running_requests = len({id(r.owner) for b in batches for r in b.rows})
        with self._cond:
            self.admission.running_tokens = sum(r.tokens_left for b in batches for r in b.rows)
            self.admission.free_rows = self._batch.free_rows if self._batch is not None else 0
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
        for active in waiting:
            active.fail(error)
        for batch in [self._batch, *self._draining]:
            if batch is not None:
                batch.fail_all(error)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _timeout_message(limit_s: float) -> str:
    return f"The request took longer than {limit_s:.0f} s and was stopped. Please try again."
