"""The `openai` backend: any OpenAI-compatible `/v1/completions` server (vLLM, TGI,
`transformers serve`), streamed through the official `openai` SDK, behind the same `Backend`
Protocol as the local engine.

Each sample is its own streamed request with its own seed (`SamplingParams.sample_seed`), so a
sample means the same thing as with the local backend. `top_k` and `repetition_penalty` are not
in OpenAI's API; they go in `extra_body`, the fields vLLM reads (`OPENAI_EXTRA_PARAMS=false`
turns that off; a server that rejects them with 400/422 is asked again without them, and from
then on). Tokens are counted with the model's own tokenizer, loaded from `path`.

The SDK retries a request that failed before streaming (`OPENAI_MAX_RETRIES`: connection
errors, timeouts, 408/409/429/5xx; it waits what `Retry-After` asks, up to two minutes); the
whole request, retries included, is bounded by `ENGINE_TIMEOUT_S`. A 429/503 left after the
retries becomes `Busy` with the server's `Retry-After`.

With `OPENAI_MODEL_DIR` set, the serving version is published to the server first
(`model.publish`: folder, `current` link, deploy hook) and requests name it by its version
name, as vLLM's `--served-model-name` does; without it they name the version's path.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from model.backends.base import (
    BackendError,
    Busy,
    Cancelled,
    Chunk,
    GenerationRequest,
    GenerationResult,
    Queued,
    QueueHandle,
    SamplingParams,
    TimedOut,
)
from model.config import ModelConfig
from model.publish import publish, publish_folder

log = logging.getLogger(__name__)

BUSY_STATUSES = (429, 503)
DEFAULT_RETRY_AFTER_S = 5.0
# The SDK refuses to start without a key; a server started without one ignores the header.
NO_API_KEY = "none"
PROBE_PROMPT = "Hello"  # a one-token request checks that the server serves an A/B version


@dataclass(frozen=True)
class Served:
    """A version requests can name: the server's model name for it and its tokenizer."""

    version: str
    model: str
    tokenizer: Any


class TaskHandle(QueueHandle):
    """A `QueueHandle` whose `cancel()` cancels the task streaming from the server."""

    task: asyncio.Task[None] | None = None

    def cancel(self) -> None:
        self.cancel_requested = True
        if self.task is not None and not self.task.done():
            self.task.cancel()


class OpenAIBackend:
    """Generates through a remote OpenAI-compatible completions server."""

    def __init__(self, config: ModelConfig, version: str, path: str) -> None:
        self._config = config.openai
        self._limits = config.engine
        self._version, self._path = version, path
        self._active: Served | None = None  # set by start()
        self._others: dict[str, Served] = {}  # A/B arms the server serves beside the active
        self._extras = self._config.extra_params  # dropped once a server rejects them
        self._client: openai.AsyncOpenAI | None = None
        self._running: dict[str, int] = {}
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._stats = {
            "completed": 0,
            "failed": 0,
            "cancelled": 0,
            "rejected": 0,
            "tokens_generated": 0,
        }

    @property
    def model_version(self) -> str:
        return self._version

    async def start(self) -> None:
        tokenizer = await asyncio.to_thread(_load_tokenizer, self._path)
        model = await publish(self._config, self._version, self._path)
        self._active = Served(self._version, model, tokenizer)
        self._client = openai.AsyncOpenAI(
            base_url=self._config.base_url,
            api_key=self._config.api_key or NO_API_KEY,
            max_retries=self._config.max_retries,
            timeout=self._limits.timeout_s,  # per attempt; `_serve` bounds the whole request
        )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        # Their handles answer `Cancelled` before the client goes: none is left unanswered.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client = None

    def count_tokens(self, text: str) -> int:
        return len(self._serving().tokenizer.encode(text))

    def tail_tokens(self, text: str, max_tokens: int) -> str:
        tokenizer = self._serving().tokenizer
        ids = tokenizer.encode(text)
        if len(ids) <= max_tokens:
            return text
        return str(tokenizer.decode(ids[len(ids) - max_tokens :]))

    async def swap(self, version: str, path: str) -> None:
        """Publish `version` (when OPENAI_MODEL_DIR is set) and send new requests to it.

        Raises `BackendError` (`PublishFailed`) and keeps the previous version when its
        tokenizer cannot be loaded or the deploy hook fails. Requests already streaming
        finish on the model they started with.
        """
        tokenizer = await asyncio.to_thread(_load_tokenizer, path)
        model = await publish(self._config, version, path)
        self._active = Served(version, model, tokenizer)
        self._version, self._path = version, path
        self._others.pop(version, None)
        log.info("openai backend: new requests ask %s for model %r", self._config.base_url, model)

    # -- A/B: versions beside the active one (ServesSeveralVersions) -------------------------
    @property
    def resident_versions(self) -> tuple[str, ...]:
        return (self._version, *self._others)

    async def load_version(self, version: str, path: str) -> None:
        """Name `version` in requests that ask for it, once the server answers for it.

        Only a server that serves both versions under their names can do this (one vLLM per
        version behind a router, `transformers serve` started in OPENAI_MODEL_DIR); a
        one-token request checks it, and `BackendError` says so when it does not.
        """
        if version == self._version or version in self._others:
            return
        if self._config.model is not None:
            raise BackendError(
                "OPENAI_MODEL names one model for every request, so two versions cannot be "
                "served side by side; unset it (and publish to OPENAI_MODEL_DIR) for A/B."
            )
        tokenizer = await asyncio.to_thread(_load_tokenizer, path)
        root = self._config.model_dir
        if root is not None:
            await asyncio.to_thread(publish_folder, root, version, path, False)
        model = version if root is not None and Path(path).is_dir() else path
        await self._probe(version, model)
        self._others[version] = Served(version, model, tokenizer)

    async def unload_version(self, version: str) -> None:
        self._others.pop(version, None)  # requests that already named it finish

    async def _probe(self, version: str, model: str) -> None:
        assert self._client is not None, "start() first"
        try:
            await self._client.completions.create(model=model, prompt=PROBE_PROMPT, max_tokens=1)
        except openai.APIError as error:
            log.warning(
                "openai backend: %s does not serve %r: %s", self._config.base_url, model, error
            )
            raise BackendError(
                f"The generation server does not serve {version} as {model!r}, so it cannot "
                "be served beside the active version; see docs/operating.md (A/B on the "
                "openai backend)."
            ) from None

    # -- requests ------------------------------------------------------------------------------
    def metrics(self) -> dict[str, float | int | str]:
        return {"running_requests": self._in_flight, "model_version": self._version, **self._stats}

    def _serving(self, version: str | None = None) -> Served:
        if self._active is None:
            raise BackendError("The generator is not running. Please retry in a moment.")
        return self._others.get(version or "", self._active)

    def submit(self, request: GenerationRequest) -> TaskHandle:
        if self._client is None:
            raise BackendError("The generator is not running. Please retry in a moment.")
        if self._in_flight >= self._config.max_in_flight:
            self._stats["rejected"] += 1
            raise Busy("The generator is busy. Please retry in a minute.", DEFAULT_RETRY_AFTER_S)
        if self._running.get(request.user, 0) >= self._limits.max_per_user:
            self._stats["rejected"] += 1
            raise Busy(
                "You already have requests in progress. Wait for one to finish, then try again.",
                DEFAULT_RETRY_AFTER_S,
            )
        handle = TaskHandle()
        handle.put_event(Queued(position=1))
        self._in_flight += 1
        self._running[request.user] = self._running.get(request.user, 0) + 1
        served = self._serving(request.version)  # fixed now: a swap does not move it
        task = asyncio.create_task(self._serve(request, served, handle))
        task.add_done_callback(functools.partial(self._finish, request.user, handle))
        self._tasks.add(task)
        handle.task = task
        return handle

    def _finish(self, user: str, handle: TaskHandle, task: asyncio.Task[None]) -> None:
        """Answer a request whose task was cancelled before its first step.

        Such a task never runs its coroutine, so `_serve` can neither answer the handle nor
        free the user's slot; without this, `result()` would wait forever and the user would
        stay "in progress" for good. Every other way the task ends goes through `_serve`.
        """
        self._tasks.discard(task)
        if task.cancelled():
            self._stats["cancelled"] += 1
            self._release(user)
            handle.put_error(Cancelled("The request was cancelled."))

    def _release(self, user: str) -> None:
        self._in_flight -= 1
        self._running[user] -= 1
        if self._running[user] <= 0:
            del self._running[user]

    async def _serve(self, request: GenerationRequest, served: Served, handle: TaskHandle) -> None:
        # Catches everything (cancellation included), so the task ends normally and the
        # handle always gets an answer; `_finish` covers the one case this cannot see.
        try:
            async with asyncio.timeout(self._limits.timeout_s):
                result = await self._generate(request, served, handle)
        except asyncio.CancelledError:
            self._stats["cancelled"] += 1
            handle.put_error(Cancelled("The request was cancelled."))
        except Exception as error:
            self._stats["failed"] += 1
            handle.put_error(self._user_error(error))
        else:
            self._stats["completed"] += 1
            self._stats["tokens_generated"] += sum(result.completion_tokens)
            handle.put_result(result)
        finally:
            self._release(request.user)

    def _user_error(self, error: Exception) -> BackendError:
        """The sentence users see for `error`; the details go to the log."""
        url = self._config.base_url
        if isinstance(error, BackendError):
            return error
        if isinstance(error, TimeoutError | openai.APITimeoutError):
            return TimedOut("The text generator took too long. Please try again.")
        if isinstance(error, openai.APIConnectionError):
            log.warning("openai backend %s: %s", url, error)
            return BackendError(
                "The text generator cannot be reached right now. Please try again later."
            )
        if isinstance(error, openai.APIStatusError):
            log.warning("openai backend %s answered %d: %s", url, error.status_code, error.body)
            if error.status_code in BUSY_STATUSES:
                retry = _retry_after(error.response.headers.get("retry-after"))
                return Busy(f"The text generator is busy. Please retry in {retry:.0f} s.", retry)
            return BackendError("The text generator refused the request. Please try again later.")
        # a malformed stream, a closed client: a bug to log, not a hang
        log.error("openai backend %s: request failed", url, exc_info=error)
        return BackendError("The text generator failed on this request. Please try again later.")

    async def _generate(
        self, request: GenerationRequest, served: Served, handle: TaskHandle
    ) -> GenerationResult:
        started = time.perf_counter()
        params, tokenizer = request.params, served.tokenizer
        budget = max(1, _context(tokenizer) - params.max_new_tokens)
        ids = tokenizer.encode(request.prompt)
        truncated = len(ids) > budget
        prompt = str(tokenizer.decode(ids[len(ids) - budget :])) if truncated else request.prompt
        first: list[float] = []
        outcomes = await asyncio.gather(
            *(
                self._stream_sample(served.model, prompt, params, index, handle, first)
                for index in range(params.samples)
            )
        )
        texts = [text for text, _ in outcomes]
        return GenerationResult(
            texts=texts,
            prompt=prompt,
            prompt_tokens=min(len(ids), budget),
            completion_tokens=[len(tokenizer.encode(t)) if t else 0 for t in texts],
            latency_s=time.perf_counter() - started,
            ttft_s=(first[0] if first else time.perf_counter()) - started,
            model_version=served.version,
            prompt_truncated=truncated,
            finish_reasons=[reason for _, reason in outcomes],
        )

    async def _stream_sample(
        self,
        model: str,
        prompt: str,
        params: SamplingParams,
        index: int,
        handle: TaskHandle,
        first: list[float],
    ) -> tuple[str, str]:
        assert self._client is not None
        extras = self._extras
        try:
            stream = await self._client.completions.create(
                model=model,
                prompt=prompt,
                max_tokens=params.max_new_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                seed=params.sample_seed(index),
                stream=True,
                extra_body=_extra_body(params) if extras else None,
            )
        except (openai.BadRequestError, openai.UnprocessableEntityError) as error:
            if not extras:
                raise
            log.warning(
                "%s rejected top_k/repetition_penalty (%s): sending without them",
                self._config.base_url,
                str(error)[:200],
            )
            self._extras = False
            return await self._stream_sample(model, prompt, params, index, handle, first)
        text, reason = "", "length"
        async with stream:
            async for completion in stream:
                for choice in completion.choices:
                    if choice.text:
                        first.append(time.perf_counter())
                        text += choice.text
                        handle.put_event(Chunk(sample=index, text=choice.text))
                    if choice.finish_reason:
                        reason = "eos" if choice.finish_reason == "stop" else "length"
        return text, reason


def _extra_body(params: SamplingParams) -> dict[str, Any]:
    """vLLM's sampling fields that OpenAI's API lacks (-1: no top-k filtering)."""
    return {"top_k": params.top_k or -1, "repetition_penalty": params.repetition_penalty}


def _retry_after(value: str | None) -> float:
    try:
        return max(1.0, float(value)) if value else DEFAULT_RETRY_AFTER_S
    except ValueError:  # an HTTP date: rare from generation servers
        return DEFAULT_RETRY_AFTER_S


def _context(tokenizer: Any) -> int:
    length = getattr(tokenizer, "model_max_length", 1024)
    return int(length) if isinstance(length, int) and length < 100_000 else 1024


def _load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except OSError as error:
        raise BackendError(
            f"The tokenizer of {path!r} cannot be loaded ({error}); the openai "
            "backend needs it to count tokens."
        ) from None
