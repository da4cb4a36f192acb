"""parrot: an example generation backend that answers with the prompt's own words, shuffled
by the request's seed and streamed one word at a time. No model, no GPU: it shows the seam
(`gpt2bot.backends`) that a real backend (a hosted API, another inference server) fills in.

    GENERATION_BACKEND=parrot gpt2bot run
"""

from __future__ import annotations

import asyncio
import random
import time

from bot import plugin_api as gpt2bot

gpt2bot.require_api(1)

WORD_DELAY_S = 0.01  # between streamed words, so a platform's streaming shows


class ParrotBackend:
    """Implements `gpt2bot.Backend`; a token here is a word."""

    def __init__(self, config: gpt2bot.ModelConfig, version: str, path: str) -> None:
        self._version = version  # the model version gpt2bot prepared; parrot needs no weights
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def model_version(self) -> str:
        return self._version

    async def start(self) -> None:
        """Nothing to load."""

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def submit(self, request: gpt2bot.GenerationRequest) -> gpt2bot.QueueHandle:
        handle = gpt2bot.QueueHandle()
        task = asyncio.get_running_loop().create_task(self._answer(request, handle))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return handle

    async def _answer(self, request: gpt2bot.GenerationRequest, handle: gpt2bot.QueueHandle):
        started, params = time.perf_counter(), request.params
        words = request.prompt.split()
        texts = []
        for sample in range(params.samples):
            chosen = random.Random(params.sample_seed(sample)).choices(
                words, k=params.max_new_tokens
            )
            for word in chosen:
                if handle.cancel_requested:
                    handle.put_error(gpt2bot.Cancelled("The request was cancelled."))
                    return
                handle.put_event(gpt2bot.Chunk(sample, f" {word}"))
                await asyncio.sleep(WORD_DELAY_S)
            texts.append("".join(f" {word}" for word in chosen))
        handle.put_result(
            gpt2bot.GenerationResult(
                texts=texts,
                prompt=request.prompt,
                prompt_tokens=len(words),
                completion_tokens=[params.max_new_tokens] * len(texts),
                latency_s=time.perf_counter() - started,
                ttft_s=WORD_DELAY_S,
                model_version=self._version,
                finish_reasons=["length"] * len(texts),
            )
        )

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def tail_tokens(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split()[-max_tokens:]) if max_tokens > 0 else ""

    async def swap(self, version: str, path: str) -> None:
        self._version = version
