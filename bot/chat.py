"""Platform-neutral use-cases: generate, regenerate, continue, rate.

Platforms parse their events into these calls and render what comes back; nothing here knows
Discord, Slack or the web. Database calls go through `Database.run`, so the event loop never
blocks.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from bot.params import MAX_SEED, InvalidRequest, parse_params, validate_prompt
from model.backends.base import (
    GPT2_CONTEXT_TOKENS,
    Backend,
    Busy,
    Chunk,
    GenerationRequest,
    GenerationResult,
    Queued,
    SamplingParams,
)
from storage import Database, GenerationRecord, GenerationRepository, NewGeneration, NotFound

log = logging.getLogger(__name__)

# Reactions that rate an output; anything else is not a rating.
RATING_EMOJI = {"👍": 1, "+1": 1, "thumbsup": 1, "👎": -1, "-1": -1, "thumbsdown": -1}
REGENERATE_EMOJI = "🔁"
CONTINUE_EMOJI = "⏩"


@dataclass(frozen=True)
class Origin:
    """Where a request came from: stored with every generation."""

    platform: str
    user_id: str
    guild_id: str | None = None
    channel_id: str | None = None


@dataclass(frozen=True)
class Finished:
    """The last event of a generation: one stored generation per sample."""

    generations: list[GenerationRecord]
    result: GenerationResult


GenerateEvent = Queued | Chunk | Finished


class ChatObserver(Protocol):
    """Told about every generation of every platform (`bot.metrics.Metrics` listens)."""

    def finished(self, platform: str, result: GenerationResult) -> None:
        """A request finished with `result`."""
        ...

    def refused(self, reason: str) -> None:
        """A request was refused before it ran (`busy`: queue or per-user limit full)."""
        ...


class Unobserved:
    """A `ChatObserver` that ignores everything (for services built without metrics)."""

    def finished(self, platform: str, result: GenerationResult) -> None:
        pass

    def refused(self, reason: str) -> None:
        pass


class ChatService:
    """The use-cases every platform calls."""

    def __init__(
        self, db: Database, backend: Backend, observer: ChatObserver | None = None
    ) -> None:
        self._db = db
        self._generations = GenerationRepository(db)
        self.backend = backend
        self.observer = observer or Unobserved()

    async def generate_stream(
        self, origin: Origin, prompt: str | None, raw_params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[GenerateEvent]:
        """Validate, queue and stream a new generation; raises `InvalidRequest` or `Busy`."""
        text = validate_prompt(prompt)
        params = parse_params(raw_params)
        async for event in self._run(origin, text, params, kind="new", parent=None):
            yield event

    async def generate(
        self, origin: Origin, prompt: str | None, raw_params: Mapping[str, Any] | None = None
    ) -> Finished:
        return await _last(self.generate_stream(origin, prompt, raw_params))

    async def regenerate_stream(
        self, generation_id: int, origin: Origin
    ) -> AsyncIterator[GenerateEvent]:
        """A sibling of the generation: same prompt and parameters, a new seed."""
        old = await self.get(generation_id)
        params = replace(_stored_params(old), samples=1, seed=secrets.randbelow(MAX_SEED + 1))
        parent = await self._parent(old)
        async for event in self._run(origin, old.prompt, params, "regenerate", parent, old):
            yield event

    async def regenerate(self, generation_id: int, origin: Origin) -> Finished:
        return await _last(self.regenerate_stream(generation_id, origin))

    async def continue_stream(
        self, generation_id: int, origin: Origin
    ) -> AsyncIterator[GenerateEvent]:
        """A child of the generation whose prompt is the text so far, cut to fit the context."""
        old = await self.get(generation_id)
        params = replace(_stored_params(old), samples=1, seed=secrets.randbelow(MAX_SEED + 1))
        budget = GPT2_CONTEXT_TOKENS - params.max_new_tokens
        prompt = self.backend.tail_tokens(old.prompt + old.output, budget)
        async for event in self._run(origin, prompt, params, "continue", old, old):
            yield event

    async def continue_(self, generation_id: int, origin: Origin) -> Finished:
        return await _last(self.continue_stream(generation_id, origin))

    async def get(self, generation_id: int) -> GenerationRecord:
        try:
            return await self._db.run(self._generations.get, generation_id)
        except NotFound:
            raise InvalidRequest(f"There is no generation #{generation_id}.") from None

    async def find_by_message(self, platform: str, message_id: str) -> GenerationRecord | None:
        return await self._db.run(self._generations.find_by_message, platform, message_id)

    async def attach_message(self, generation_id: int, message_id: str) -> None:
        """Remember the platform message that shows the generation (reactions find it)."""
        await self._db.run(self._generations.set_message_id, generation_id, message_id)

    async def conversation(self, conversation_id: int) -> list[GenerationRecord]:
        return await self._db.run(self._generations.conversation, conversation_id)

    async def rate(self, generation_id: int, rater_id: str, emoji: str) -> int:
        """Store a rating from a reaction; returns the score. Raises for non-rating emoji."""
        score = RATING_EMOJI.get(emoji)
        if score is None:
            raise InvalidRequest(f"{emoji} is not a rating: use 👍 or 👎.")
        await self.get(generation_id)
        await self._db.run(self._generations.rate, generation_id, rater_id, score, emoji)
        return score

    async def unrate(self, generation_id: int, rater_id: str, emoji: str | None = None) -> bool:
        """Remove a rating; with `emoji`, only if that reaction is the current rating."""
        return await self._db.run(self._generations.unrate, generation_id, rater_id, emoji)

    async def _parent(self, generation: GenerationRecord) -> GenerationRecord | None:
        if generation.parent_id is None:
            return None
        return await self.get(generation.parent_id)

    async def _run(
        self,
        origin: Origin,
        prompt: str,
        params: SamplingParams,
        kind: str,
        parent: GenerationRecord | None,
        conversation_of: GenerationRecord | None = None,
    ) -> AsyncIterator[GenerateEvent]:
        request_id = uuid.uuid4().hex[:12]
        request = GenerationRequest(prompt, params, user=origin.user_id, request_id=request_id)
        try:
            handle = self.backend.submit(request)
        except Busy:
            self.observer.refused("busy")
            raise
        try:
            async for event in handle:
                yield event
            result = await handle.result()
        finally:
            handle.cancel()  # no-op when finished; stops the work if the caller went away
        self.observer.finished(origin.platform, result)
        records = []
        for index, output in enumerate(result.texts):
            new = NewGeneration(
                platform=origin.platform,
                user_id=origin.user_id,
                guild_id=origin.guild_id,
                channel_id=origin.channel_id,
                prompt=result.prompt,
                output=output,
                params={k: v for k, v in asdict(params).items() if k != "seed"},
                seed=params.sample_seed(index),
                sample_index=index,
                model_version=result.model_version,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens[index],
                latency_s=result.latency_s,
                prompt_truncated=result.prompt_truncated,
                kind=kind,
                parent_id=parent.id if parent else None,
                conversation_id=conversation_of.conversation_id if conversation_of else None,
            )
            records.append(await self._db.run(self._generations.add, new))
            # all samples of one request share a conversation
            conversation_of = conversation_of or records[0]
        log.info(
            "generation %s: %d sample(s), %d prompt tokens, %.2fs, model %s",
            request_id,
            len(records),
            result.prompt_tokens,
            result.latency_s,
            result.model_version,
        )
        yield Finished(generations=records, result=result)


def _stored_params(generation: GenerationRecord) -> SamplingParams:
    return SamplingParams(**{**generation.params, "seed": generation.seed})


async def _last(stream: AsyncIterator[GenerateEvent]) -> Finished:
    last: GenerateEvent | None = None
    async for event in stream:
        last = event
    if not isinstance(last, Finished):  # the stream always ends with Finished or raises
        raise RuntimeError("generation ended without a result")
    return last
