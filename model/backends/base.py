"""The `gpt2bot.backends` seam: what the bot needs from whatever generates text.

A backend takes a `GenerationRequest`, answers at once with a `GenerationHandle`, and the caller
reads the handle's events (queue position, text chunks) until the final `GenerationResult`.
`LocalBackend` runs transformers in-process; a third-party package adds another backend by
declaring an entry point in the `gpt2bot.backends` group.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

GPT2_CONTEXT_TOKENS = 1024


@dataclass(frozen=True)
class SamplingParams:
    """Validated sampling parameters of one request (see bot.params for the limits)."""

    temperature: float = 0.8  # 0 means greedy decoding
    top_k: int = 50  # 0 disables top-k filtering
    top_p: float = 0.95
    max_new_tokens: int = 64
    repetition_penalty: float = 1.1
    samples: int = 1
    seed: int = 0

    def sample_seed(self, index: int) -> int:
        """The seed of sample `index`: each sample has its own reproducible random stream."""
        return (self.seed + index) % (2**63)


@dataclass(frozen=True)
class GenerationRequest:
    """One user's request. `user` keys per-user limits; `request_id` shows up in logs."""

    prompt: str
    params: SamplingParams
    user: str = "anonymous"
    request_id: str = ""
    # the version to serve it (an A/B arm); None = the active version. A version that is not
    # resident is served by the active one: `GenerationResult.model_version` says which served.
    version: str | None = None


@dataclass(frozen=True)
class Queued:
    """The request waits; `position` 1 means it runs next."""

    position: int


@dataclass(frozen=True)
class Chunk:
    """Newly decoded text of sample `sample` (0-based)."""

    sample: int
    text: str


@dataclass(frozen=True)
class GenerationResult:
    """What a finished request produced."""

    texts: list[str]  # one per sample, without the prompt
    prompt: str  # the prompt as the model saw it (cut from the left when too long)
    prompt_tokens: int
    completion_tokens: list[int]  # per sample
    latency_s: float
    ttft_s: float
    model_version: str
    prompt_truncated: bool = False
    finish_reasons: list[str] = field(default_factory=list)  # "eos" | "length" | "cancelled"


GenerationEvent = Queued | Chunk


class BackendError(Exception):
    """A request could not be served; the message is safe to show to users."""


class Busy(BackendError):
    """The queue is full (or the user has too many requests running): retry later."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Cancelled(BackendError):
    """The request was cancelled before it finished."""


class TimedOut(BackendError):
    """The request did not finish within the backend's time limit."""


# a metric's value: a number, a label (e.g. the model version), or numbers by label (e.g. the
# engine's `running_rows_by_version`)
MetricValue = float | int | str | dict[str, int]


@runtime_checkable
class ReportsMetrics(Protocol):
    """A backend that can describe its load (queue depth, tokens/s, latency percentiles)."""

    def metrics(self) -> Mapping[str, MetricValue]:
        """A snapshot of the backend's metrics, JSON-serializable."""
        ...


@runtime_checkable
class ServesSeveralVersions(Protocol):
    """A backend that keeps other versions resident beside the active one (A/B serving), so
    a request can name the version that serves it (`GenerationRequest.version`)."""

    @property
    def resident_versions(self) -> tuple[str, ...]:
        """The versions a request may name now, the active one first."""
        ...

    async def load_version(self, version: str, path: str) -> None:
        """Keep `version` resident beside the active one (a no-op when it already is)."""
        ...

    async def unload_version(self, version: str) -> None:
        """Stop serving `version` (never the active one); its running requests finish."""
        ...


@runtime_checkable
class GenerationHandle(Protocol):
    """A submitted request: iterate it for events, await `result()` for the outcome."""

    def __aiter__(self) -> AsyncIterator[GenerationEvent]:
        """Yield `Queued` and `Chunk` events until the request ends."""
        ...

    async def result(self) -> GenerationResult:
        """The final result; raises `BackendError` (e.g. `Cancelled`) when it failed."""
        ...

    def cancel(self) -> None:
        """Stop the request as soon as possible; `result()` then raises `Cancelled`."""
        ...


@runtime_checkable
class Backend(Protocol):
    """Generates text for many concurrent callers."""

    @property
    def model_version(self) -> str:
        """Name of the model version that serves new requests."""
        ...

    async def start(self) -> None:
        """Load what is needed; called once before the first `submit`."""
        ...

    async def close(self) -> None:
        """Finish or cancel in-flight work and release resources."""
        ...

    def submit(self, request: GenerationRequest) -> GenerationHandle:
        """Queue a request. Raises `Busy` at once when it cannot be admitted."""
        ...

    def count_tokens(self, text: str) -> int:
        """Number of tokens `text` takes for the serving model."""
        ...

    def tail_tokens(self, text: str, max_tokens: int) -> str:
        """The end of `text` that fits in `max_tokens` tokens (all of it if it fits)."""
        ...

    async def swap(self, version: str, path: str) -> None:
        """Serve new requests from the model at `path`, named `version`, without downtime."""
        ...


class QueueHandle:
    """A `GenerationHandle` fed by a producer through an asyncio queue.

    Backends push events with `put_*` (from the event loop, or from a worker thread via
    `loop.call_soon_threadsafe`) and consumers iterate it.
    """

    _DONE = object()

    def __init__(self) -> None:
        self._events: asyncio.Queue[object] = asyncio.Queue()
        self._future: asyncio.Future[GenerationResult] = asyncio.get_running_loop().create_future()
        self.cancel_requested = False

    def put_event(self, event: GenerationEvent) -> None:
        self._events.put_nowait(event)

    def put_result(self, result: GenerationResult) -> None:
        if not self._future.done():
            self._future.set_result(result)
        self._events.put_nowait(self._DONE)

    def put_error(self, error: BaseException) -> None:
        if not self._future.done():
            self._future.set_exception(error)
            # A caller that cancelled and left never awaits the result; the backend has
            # logged real failures already, so asyncio need not report it as unretrieved.
            self._future.exception()
        self._events.put_nowait(self._DONE)

    async def __aiter__(self) -> AsyncIterator[GenerationEvent]:
        while True:
            item = await self._events.get()
            if item is self._DONE:
                return
            yield item  # type: ignore[misc]

    async def result(self) -> GenerationResult:
        return await self._future

    def cancel(self) -> None:
        self.cancel_requested = True
