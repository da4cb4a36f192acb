"""A backend for tests, beside the seam it implements (`model/backends/base.py`), the way
httpx ships `MockTransport` beside `BaseTransport`.

`ScriptedBackend` answers with known text, streamed in pieces with a delay, so platform tests
can check streaming, queue positions, cancellation, "busy" and A/B arms without a model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from model.backends.base import (
    Busy,
    Cancelled,
    Chunk,
    GenerationRequest,
    GenerationResult,
    Queued,
    QueueHandle,
)

TextFn = Callable[[GenerationRequest, int], str]


def echo(request: GenerationRequest, sample: int) -> str:
    """The default answer: says which sample and seed produced it."""
    return f" and then sample {sample} with seed {request.params.sample_seed(sample)} ended."


class ScriptedBackend:
    """Answers with `text(request, sample)`, streamed in `chunks` pieces `delay_s` apart; or,
    with `words`, one word per piece, at most `max_new_tokens` of them (a token-like stream).
    Set `busy_retry_s` to refuse requests with `Busy`."""

    def __init__(
        self,
        text: TextFn = echo,
        chunks: int = 1,
        delay_s: float = 0.0,
        busy_retry_s: float | None = None,
        model_version: str = "fake-1",
        start_delay_s: float = 0.0,  # before the first event, e.g. a model still loading
        queued_at: int = 1,  # the queue position reported first
        words: tuple[str, ...] | None = None,
    ) -> None:
        self.text, self.chunks, self.delay_s, self.words = text, chunks, delay_s, words
        self.busy_retry_s = busy_retry_s
        self.start_delay_s, self.queued_at = start_delay_s, queued_at
        self._version = model_version
        self.requests: list[GenerationRequest] = []
        self.cancelled: list[str] = []
        self.swaps: list[tuple[str, str]] = []
        self.extra: dict[str, str] = {}  # resident besides the active version: name -> path
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def model_version(self) -> str:
        return self._version

    async def start(self) -> None:
        """Nothing to load."""

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def submit(self, request: GenerationRequest) -> QueueHandle:
        if self.busy_retry_s is not None:
            seconds = f"{self.busy_retry_s:g}"
            raise Busy(
                f"The bot is busy right now: please retry in {seconds} seconds.",
                retry_after_s=self.busy_retry_s,
            )
        self.requests.append(request)
        handle = QueueHandle()
        task = asyncio.get_running_loop().create_task(self._produce(request, handle))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return handle

    def _pieces(self, request: GenerationRequest, sample: int) -> list[str]:
        if self.words is not None:
            return list(self.words[: request.params.max_new_tokens])
        text = self.text(request, sample)
        size = max(1, -(-len(text) // self.chunks))
        return [text[start : start + size] for start in range(0, len(text), size)]

    async def _produce(self, request: GenerationRequest, handle: QueueHandle) -> None:
        started = time.perf_counter()
        await asyncio.sleep(self.start_delay_s)
        for position in range(self.queued_at, 0, -1):
            handle.put_event(Queued(position=position))
            await asyncio.sleep(self.delay_s)
        texts = []
        for sample in range(request.params.samples):
            pieces = self._pieces(request, sample)
            for piece in pieces:
                await asyncio.sleep(self.delay_s)
                if handle.cancel_requested:
                    self.cancelled.append(request.request_id)
                    handle.put_error(Cancelled("The request was cancelled."))
                    return
                handle.put_event(Chunk(sample=sample, text=piece))
            texts.append("".join(pieces))
        handle.put_result(
            GenerationResult(
                texts=texts,
                prompt=request.prompt,
                prompt_tokens=self.count_tokens(request.prompt),
                completion_tokens=[self.count_tokens(t) for t in texts],
                latency_s=time.perf_counter() - started,
                ttft_s=self.delay_s,
                model_version=self._serving(request),
                finish_reasons=["length"] * len(texts),
            )
        )

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def tail_tokens(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split(" ")[-max_tokens:])

    async def swap(self, version: str, path: str) -> None:
        self.swaps.append((version, path))
        self.extra.pop(version, None)
        self._version = version

    def _serving(self, request: GenerationRequest) -> str:
        return request.version if request.version in self.extra else self._version

    @property
    def resident_versions(self) -> tuple[str, ...]:
        return (self._version, *self.extra)

    async def load_version(self, version: str, path: str) -> None:
        if version != self._version:
            self.extra[version] = path

    async def unload_version(self, version: str) -> None:
        self.extra.pop(version, None)
