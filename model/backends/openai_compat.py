"""The `openai` backend: any OpenAI-compatible `/v1/completions` server (vLLM, TGI,
`transformers serve`), streaming, behind the same `Backend` Protocol as the local engine.

Each sample is its own streamed request with its own seed (`SamplingParams.sample_seed`), so a
sample means the same thing as with the local backend. `top_k` and `repetition_penalty` are not
in OpenAI's API; they are sent as the extra fields vLLM reads (`OPENAI_EXTRA_PARAMS=false` turns
that off for servers that reject unknown fields). Tokens are counted with the model's own
tokenizer, loaded from `path` (a local folder or a cached hub id).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from typing import Any

import aiohttp

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

log = logging.getLogger(__name__)

BUSY_STATUSES = (429, 503)
DEFAULT_RETRY_AFTER_S = 5.0


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
        self._model_name = self._config.model or path
        self._extras = self._config.extra_params  # dropped once a server rejects them
        self._tokenizer: Any = None
        self._session: aiohttp.ClientSession | None = None
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
        self._tokenizer = await asyncio.to_thread(_load_tokenizer, self._path)
        timeout = aiohttp.ClientTimeout(total=self._limits.timeout_s, sock_connect=10)
        headers = (
            {"Authorization": f"Bearer {self._config.api_key}"} if self._config.api_key else {}
        )
        self._session = aiohttp.ClientSession(timeout=timeout, headers=headers)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        # Their handles answer `Cancelled` before the session goes: none is left unanswered.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text))

    def tail_tokens(self, text: str, max_tokens: int) -> str:
        ids = self._tokenizer.encode(text)
        if len(ids) <= max_tokens:
            return text
        return str(self._tokenizer.decode(ids[len(ids) - max_tokens :]))

    async def swap(self, version: str, path: str) -> None:
        """Send new requests to the server's model `path` (OPENAI_MODEL, when set, stays)."""
        self._tokenizer = await asyncio.to_thread(_load_tokenizer, path)
        self._version, self._path = version, path
        self._model_name = self._config.model or path

    def metrics(self) -> dict[str, float | int | str]:
        return {"running_requests": self._in_flight, "model_version": self._version, **self._stats}

    def submit(self, request: GenerationRequest) -> TaskHandle:
        if self._session is None:
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
        task = asyncio.create_task(self._serve(request, handle))
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

    async def _serve(self, request: GenerationRequest, handle: TaskHandle) -> None:
        # Catches everything (cancellation included), so the task ends normally and the
        # handle always gets an answer; `_finish` covers the one case this cannot see.
        try:
            result = await self._generate(request, handle)
        except asyncio.CancelledError:
            self._stats["cancelled"] += 1
            handle.put_error(Cancelled("The request was cancelled."))
        except TimeoutError:
            self._stats["failed"] += 1
            handle.put_error(TimedOut("The text generator took too long. Please try again."))
        except BackendError as error:
            self._stats["failed"] += 1
            handle.put_error(error)
        except aiohttp.ClientError as error:
            self._stats["failed"] += 1
            log.warning("openai backend %s: %s", self._config.base_url, error)
            handle.put_error(
                BackendError(
                    "The text generator cannot be reached right now. Please try again later."
                )
            )
        except Exception:  # a malformed stream, a closed session: a bug to log, not a hang
            self._stats["failed"] += 1
            log.exception("openai backend %s: request failed", self._config.base_url)
            handle.put_error(
                BackendError("The text generator failed on this request. Please try again later.")
            )
        else:
            self._stats["completed"] += 1
            self._stats["tokens_generated"] += sum(result.completion_tokens)
            handle.put_result(result)
        finally:
            self._release(request.user)

    async def _generate(self, request: GenerationRequest, handle: TaskHandle) -> GenerationResult:
        started = time.perf_counter()
        params = request.params
        budget = max(1, _context(self._tokenizer) - params.max_new_tokens)
        ids = self._tokenizer.encode(request.prompt)
        truncated = len(ids) > budget
        prompt = (
            str(self._tokenizer.decode(ids[len(ids) - budget :])) if truncated else request.prompt
        )
        first: list[float] = []
        outcomes = await asyncio.gather(
            *(
                self._stream_sample(prompt, params, index, handle, first)
                for index in range(params.samples)
            )
        )
        texts = [text for text, _ in outcomes]
        return GenerationResult(
            texts=texts,
            prompt=prompt,
            prompt_tokens=min(len(ids), budget),
            completion_tokens=[len(self._tokenizer.encode(t)) if t else 0 for t in texts],
            latency_s=time.perf_counter() - started,
            ttft_s=(first[0] if first else time.perf_counter()) - started,
            model_version=self._version,
            prompt_truncated=truncated,
            finish_reasons=[reason for _, reason in outcomes],
        )

    def _body(self, prompt: str, params: SamplingParams, index: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model_name,
            "prompt": prompt,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.sample_seed(index),
            "stream": True,
        }
        if self._extras:
            body.update(top_k=params.top_k or -1, repetition_penalty=params.repetition_penalty)
        return body

    async def _stream_sample(
        self,
        prompt: str,
        params: SamplingParams,
        index: int,
        handle: TaskHandle,
        first: list[float],
    ) -> tuple[str, str]:
        assert self._session is not None
        url = self._config.base_url.rstrip("/") + "/completions"
        text, reason = "", "length"
        body = self._body(prompt, params, index)
        async with self._session.post(url, json=body) as response:
            if response.status in (400, 422) and "top_k" in body:
                log.warning(
                    "%s rejected top_k/repetition_penalty (%s): sending without them",
                    url,
                    (await response.text())[:200],
                )
                self._extras = False
                response.release()
                return await self._stream_sample(prompt, params, index, handle, first)
            await _raise_for_status(response)
            async for data in _events(response):
                for choice in data.get("choices", []):
                    piece = choice.get("text") or ""
                    if piece:
                        first.append(time.perf_counter())
                        text += piece
                        handle.put_event(Chunk(sample=index, text=piece))
                    if choice.get("finish_reason"):
                        reason = "eos" if choice["finish_reason"] == "stop" else "length"
        return text, reason


async def _events(response: aiohttp.ClientResponse) -> Any:
    """The JSON payloads of a server-sent-events stream, until `[DONE]`."""
    async for raw in response.content:
        line = raw.decode("utf-8").strip()
        if not line.startswith("data:"):
            continue
        payload = line[len("data:") :].strip()
        if payload == "[DONE]":
            return
        yield json.loads(payload)


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    body = (await response.text())[:500]
    log.warning("openai backend answered %d: %s", response.status, body)
    if response.status in BUSY_STATUSES:
        retry = _retry_after(response.headers.get("Retry-After"))
        raise Busy(f"The text generator is busy. Please retry in {retry:.0f} s.", retry)
    raise BackendError("The text generator refused the request. Please try again later.")


def _retry_after(value: str | None) -> float:
    try:
        return max(1.0, float(value)) if value else DEFAULT_RETRY_AFTER_S
    except ValueError:
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
