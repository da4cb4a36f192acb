"""One request inside the engine: its handle, its samples' progress, how it ends, and its
prompt tokenized for the model version that serves it.

The worker thread owns these objects; everything that reaches the caller goes through
`loop.call_soon_threadsafe`, so the asyncio side only ever touches the handle on its own loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from model.backends.base import (
    BackendError,
    Chunk,
    GenerationEvent,
    GenerationRequest,
    GenerationResult,
    QueueHandle,
)
from model.engine.detok import decode

if TYPE_CHECKING:
    from model.versions import LoadedModel


class EngineHandle(QueueHandle):
    """A `QueueHandle` whose `cancel()` also wakes the worker, so a cancel acts at once."""

    def __init__(self, wake: Callable[[], None]) -> None:
        super().__init__()
        self._wake = wake

    def cancel(self) -> None:
        if not self.cancel_requested:
            self.cancel_requested = True
            self._wake()


@dataclass
class ActiveRequest:
    request: GenerationRequest
    handle: EngineHandle
    loop: asyncio.AbstractEventLoop
    submitted: float = field(default_factory=time.perf_counter)
    deadline: float = 0.0
    position: int = 0  # last queue position told to the caller
    prompt_ids: list[int] = field(default_factory=list)
    prompt_text: str = ""
    truncated: bool = False
    version: str = ""  # the version serving it (an adapter's, or its batch's own)
    tokenized_for: str = ""  # the loaded model whose tokenizer made `prompt_ids`
    texts: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    first_token: float | None = None
    rows_left: int = 0
    done: bool = False
    on_end: Callable[[ActiveRequest, GenerationResult | None], None] = lambda _r, _result: None

    @property
    def samples(self) -> int:
        return self.request.params.samples

    @property
    def work(self) -> int:
        """Tokens this request may generate (`max_new_tokens` per sample)."""
        return self.samples * self.request.params.max_new_tokens

    def expired(self, now: float) -> bool:
        return now >= self.deadline

    def emit(self, event: GenerationEvent) -> None:
        self.loop.call_soon_threadsafe(self.handle.put_event, event)

    def chunk(self, sample: int, text: str) -> None:
        if self.first_token is None:
            self.first_token = time.perf_counter()
        if text:
            self.texts[sample] += text
            self.emit(Chunk(sample=sample, text=text))

    def fail(self, error: BackendError) -> None:
        if not self.done:
            self.done = True
            self.on_end(self, None)
            self.loop.call_soon_threadsafe(self.handle.put_error, error)

    def sample_finished(self, sample: int, tokens: int, reason: str) -> GenerationResult | None:
        """Record one sample's end; the whole result once every sample has ended."""
        self.counts[sample], self.reasons[sample] = tokens, reason
        self.rows_left -= 1
        if self.rows_left > 0 or self.done:
            return None
        self.done = True
        now = time.perf_counter()
        result = GenerationResult(
            texts=list(self.texts),
            prompt=self.prompt_text,
            prompt_tokens=len(self.prompt_ids),
            completion_tokens=list(self.counts),
            latency_s=now - self.submitted,
            ttft_s=(self.first_token or now) - self.submitted,
            model_version=self.version,
            prompt_truncated=self.truncated,
            finish_reasons=list(self.reasons),
        )
        self.on_end(self, result)  # before the caller can see the result: metrics are current
        self.loop.call_soon_threadsafe(self.handle.put_result, result)
        return result


def tokenize_for(requests: list[ActiveRequest], loaded: LoadedModel) -> None:
    """Tokenize the prompts of `requests` not yet tokenized for `loaded`'s version."""
    for active in requests:
        if active.tokenized_for != loaded.version:
            tokenize_prompt(active, loaded)


def tokenize_prompt(active: ActiveRequest, loaded: LoadedModel) -> None:
    """Tokenize the prompt for `loaded`, cutting it from the left to fit the context, and
    reset the request's per-sample results for that version."""
    params = active.request.params
    tokenizer = loaded.tokenizer
    context = int(loaded.model.config.n_positions)
    budget = max(1, context - params.max_new_tokens)
    ids = list(tokenizer.encode(active.request.prompt)) or [tokenizer.eos_token_id]
    active.truncated = len(ids) > budget
    if active.truncated:
        ids = ids[len(ids) - budget :]
    active.prompt_ids = ids
    active.prompt_text = decode(tokenizer, ids) if active.truncated else active.request.prompt
    active.tokenized_for = loaded.version
    active.texts = [""] * active.samples
    active.counts = [0] * active.samples
    active.reasons = [""] * active.samples
