"""The `local` backend: transformers in this process, one request at a time in a worker thread.

This is the simple serving path (one `generate` call per sample). The batching engine replaces
it behind the same `Backend` Protocol.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from model.backends.base import (
    GPT2_CONTEXT_TOKENS,
    Busy,
    Cancelled,
    Chunk,
    GenerationRequest,
    GenerationResult,
    Queued,
    QueueHandle,
    SamplingParams,
)
from model.config import ModelConfig
from model.device import resolve_device
from model.versions import LoadedModel, ModelCache

log = logging.getLogger(__name__)

MAX_WAITING = 64  # requests queued beyond this get an immediate "busy"


def context_limit(loaded: LoadedModel) -> int:
    return min(GPT2_CONTEXT_TOKENS, int(loaded.model.config.n_positions))


def generate_sample(
    loaded: LoadedModel, input_ids: torch.Tensor, params: SamplingParams, index: int
) -> tuple[list[int], str]:
    """One sample's new token ids and reason it stopped, reproducible from its seed."""
    torch.manual_seed(params.sample_seed(index))
    greedy = params.temperature == 0
    with torch.inference_mode():
        output = loaded.model.generate(  # type: ignore[operator]
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=params.max_new_tokens,
            do_sample=not greedy,
            temperature=None if greedy else params.temperature,
            top_k=None if greedy else params.top_k,
            top_p=None if greedy else params.top_p,
            repetition_penalty=params.repetition_penalty,
            pad_token_id=loaded.tokenizer.eos_token_id,
            eos_token_id=loaded.tokenizer.eos_token_id,
        )
    new_ids = output[0, input_ids.shape[1] :].tolist()
    eos = loaded.tokenizer.eos_token_id
    if eos in new_ids:
        return new_ids[: new_ids.index(eos)], "eos"
    return new_ids, "length"


class LocalBackend:
    """Serves one model version from this process."""

    def __init__(self, config: ModelConfig, version: str, path: str) -> None:
        self._config = config
        self._cache = ModelCache(resolve_device(config.device), config.dtype, config.hub_timeout_s)
        self._version, self._path = version, path
        self._loaded: LoadedModel | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
        self._waiting = 0
        self._lock = threading.Lock()

    @property
    def model_version(self) -> str:
        return self._version

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            raise RuntimeError("backend not started")
        return self._loaded

    async def start(self) -> None:
        self._loaded = await asyncio.to_thread(self._cache.get, self._version, self._path)

    async def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def count_tokens(self, text: str) -> int:
        return len(self.loaded.tokenizer.encode(text))

    def tail_tokens(self, text: str, max_tokens: int) -> str:
        ids = self.loaded.tokenizer.encode(text)
        if len(ids) <= max_tokens:
            return text
        return str(self.loaded.tokenizer.decode(ids[len(ids) - max_tokens :]))

    async def swap(self, version: str, path: str) -> None:
        loaded = await asyncio.to_thread(self._cache.get, version, path)
        old = self._version
        with self._lock:  # the worker picks the model per request, so in-flight ones finish
            self._loaded, self._version, self._path = loaded, version, path
        if old != version:
            self._cache.evict(old)

    def submit(self, request: GenerationRequest) -> QueueHandle:
        if self._waiting >= MAX_WAITING:
            raise Busy("The generator is busy. Please retry in a minute.", retry_after_s=60.0)
        handle = QueueHandle()
        self._waiting += 1
        handle.put_event(Queued(position=self._waiting))
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._run, request, handle, loop)
        future.add_done_callback(lambda _f: self._done())
        return handle

    def _done(self) -> None:
        self._waiting -= 1

    def _run(
        self, request: GenerationRequest, handle: QueueHandle, loop: asyncio.AbstractEventLoop
    ) -> None:
        try:
            result = self._generate(request, handle, loop)
        except Exception as error:  # reported to the caller, logged with details here
            if not isinstance(error, Cancelled):
                log.exception("generation %s failed", request.request_id)
            loop.call_soon_threadsafe(handle.put_error, error)
        else:
            loop.call_soon_threadsafe(handle.put_result, result)

    def _generate(
        self, request: GenerationRequest, handle: QueueHandle, loop: asyncio.AbstractEventLoop
    ) -> GenerationResult:
        started = time.perf_counter()
        with self._lock:
            loaded = self.loaded
        params = request.params
        budget = context_limit(loaded) - params.max_new_tokens
        ids = loaded.tokenizer.encode(request.prompt)
        truncated = len(ids) > budget
        ids = ids[len(ids) - budget :] if truncated else ids
        input_ids = torch.tensor([ids], device=loaded.device)
        texts, counts, reasons, ttft = [], [], [], 0.0
        for index in range(params.samples):
            if handle.cancel_requested:
                raise Cancelled("The request was cancelled.")
            new_ids, reason = generate_sample(loaded, input_ids, params, index)
            text = str(loaded.tokenizer.decode(new_ids, skip_special_tokens=True))
            ttft = ttft or time.perf_counter() - started
            loop.call_soon_threadsafe(handle.put_event, Chunk(sample=index, text=text))
            texts.append(text)
            counts.append(len(new_ids))
            reasons.append(reason)
        return GenerationResult(
            texts=texts,
            prompt=str(loaded.tokenizer.decode(ids)) if truncated else request.prompt,
            prompt_tokens=len(ids),
            completion_tokens=counts,
            latency_s=time.perf_counter() - started,
            ttft_s=ttft,
            model_version=loaded.version,
            prompt_truncated=truncated,
            finish_reasons=reasons,
        )
