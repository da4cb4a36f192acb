"""Platform-neutral use-cases: generate, regenerate, continue (or reply), rate.

Platforms parse their events into these calls and render what comes back; nothing here knows
Discord, Slack or the web. Database calls go through `Database.run` (the loop never blocks).
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from admin.base import ExperimentService
from admin.moderation import Moderator, Verdict
from bot.arms import Arms, NoExperiments
from bot.chat_config import ChatConfig
from bot.fairuse import Cooldown, CoolingDown, NotAllowedHere, within_caps
from bot.lines import LineServing
from bot.metrics import ChatObserver, Unobserved
from bot.params import MAX_SEED, InvalidRequest, parse_params, validate_prompt
from bot.screening import PromptRefused, StreamGate, report_withheld, shown
from model.backends.base import (
    GPT2_CONTEXT_TOKENS,
    Backend,
    Busy,
    Chunk,
    GenerationHandle,
    GenerationRequest,
    GenerationResult,
    Queued,
    SamplingParams,
)
from storage import (
    Database,
    GenerationRecord,
    GenerationRepository,
    NewGeneration,
    NotFound,
    ReportOutcome,
    ReportRepository,
    ServerSettingsRecord,
    ServerSettingsRepository,
)

log = logging.getLogger(__name__)

# Reactions that rate an output; anything else is not a rating.
RATING_EMOJI = {"👍": 1, "+1": 1, "thumbsup": 1, "👎": -1, "-1": -1, "thumbsdown": -1}
HISTORY_LIMIT = 10
REGENERATE_EMOJI = "🔁"
REPORT_EMOJI = "🚩"
STOP_EMOJI = frozenset({"⏹", "⏹️"})  # with and without the emoji variation selector
CONTINUE_EMOJI = "⏩"
PROMPT_FIELD = "{prompt}"  # where a member's text goes in a server's prompt template
CONTEXT_NOTICE = "the oldest text of this conversation was left out to fit GPT-2's context"


@dataclass(frozen=True)
class Origin:
    """Where a request came from: stored with every generation."""

    platform: str
    user_id: str
    guild_id: str | None = None
    channel_id: str | None = None
    parent_channel_id: str | None = None  # a thread's channel: the server's rules apply there
    serves_as: str | None = None  # a server key whose model line serves it (CLI `--server`)


@dataclass(frozen=True)
class Finished:
    """The last event of a generation: one stored generation per sample."""

    generations: list[GenerationRecord]
    result: GenerationResult
    notice: str | None = None  # for the footer: the chain outgrew the context just now


GenerateEvent = Queued | Chunk | Finished


class ChatService:
    """The use-cases every platform calls."""

    def __init__(
        self,
        db: Database,
        backend: Backend,
        config: ChatConfig | None = None,
        observer: ChatObserver | None = None,
        *,
        moderator: Moderator,
        experiments: ExperimentService | None = None,
    ) -> None:
        self._db = db
        self.arms = Arms(experiments or NoExperiments())  # A/B: which version serves whom
        self.lines = LineServing(db, backend)  # a server's own model line serves it first
        self.moderator = moderator
        self._generations = GenerationRepository(db)
        self._servers = ServerSettingsRepository(db)
        self._reports = ReportRepository(db)
        self.backend = backend
        self.config = config or ChatConfig()
        self._cooldown = Cooldown()
        self._running: dict[tuple[str, str], set[GenerationHandle]] = {}  # member -> handles
        self.observer = observer or Unobserved()

    async def generate_stream(
        self, origin: Origin, prompt: str | None, raw_params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[GenerateEvent]:
        """Validate, queue and stream a new generation; raises `InvalidRequest` (a private
        sentence: bad input, wrong channel, too soon, over the server's caps) or `Busy`."""
        text = validate_prompt(prompt)
        rules = await self._admit(origin)
        await self._screen(origin, text, rules)
        chosen = {k: v for k, v in (raw_params or {}).items() if v is not None and v != ""}
        params = within_caps(parse_params({**rules.defaults, **chosen}), rules)
        self._count(origin, rules)
        template, _ = rules.template_for(origin.channel_id)  # GPT-2's "system prompt"
        prompt = text if template is None else template.replace(PROMPT_FIELD, text)
        run = self._run(origin, prompt, params, "new", None, rules=rules, template=template)
        async for event in run:
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
        rules = await self._admit(origin)
        params = _fresh_params(old, rules)
        self._count(origin, rules)
        parent = None if old.parent_id is None else await self.get(old.parent_id)
        run = self._run(
            origin,
            old.prompt,
            params,
            "regenerate",
            parent,
            old,
            rules=rules,
            template=old.template,
        )
        async for event in run:
            yield event

    async def regenerate(self, generation_id: int, origin: Origin) -> Finished:
        return await _last(self.regenerate_stream(generation_id, origin))

    async def continue_stream(
        self, generation_id: int, origin: Origin, added: str | None = None
    ) -> AsyncIterator[GenerateEvent]:
        """A child of the generation whose prompt is the text so far, cut from the start to fit
        the context. `added`: a member's reply, appended on a new line (kind `reply`)."""
        old = await self.get(generation_id)
        if old.withheld:
            raise InvalidRequest("That output was withheld, so it cannot be continued.")
        words = None if added is None else validate_prompt(added)
        rules = await self._admit(origin)
        if words is not None:
            await self._screen(origin, words, rules)
        params = _fresh_params(old, rules)
        self._count(origin, rules)
        so_far = old.prompt + old.output
        if words is not None:
            so_far += ("" if so_far.endswith("\n") else "\n") + words
        prompt = self.backend.tail_tokens(so_far, GPT2_CONTEXT_TOKENS - params.max_new_tokens)
        cut = len(prompt) < len(so_far)
        kind = "continue" if words is None else "reply"
        cuts = (cut, cut and not old.prompt_truncated)  # the answer says so once: when it starts
        run = self._run(
            origin, prompt, params, kind, old, old, rules=rules, template=old.template, cut=cuts
        )
        async for event in run:
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

    async def conversation(
        self, conversation_id: int, origin: Origin | None = None
    ) -> list[GenerationRecord]:
        """A conversation in the order it was made. With `origin`, only one the asker can read:
        they took part in it, or it happened in the server they ask from."""
        chain = await self._db.run(self._generations.conversation, conversation_id)
        if origin is not None and not any(_readable_by(g, origin) for g in chain):
            chain = []
        if not chain:
            readable = "" if origin is None else " you can read"
            raise InvalidRequest(f"There is no conversation #{conversation_id}{readable}.")
        return [shown(g) for g in chain]

    async def history(self, origin: Origin, limit: int = HISTORY_LIMIT) -> list[GenerationRecord]:
        """The member's newest generations on this platform (withheld outputs replaced)."""
        records = await self._db.run(
            self._generations.recent_by_user, origin.platform, origin.user_id, limit
        )
        return [shown(g) for g in records]

    async def rate(self, generation_id: int, rater_id: str, emoji: str) -> int:
        """Store a rating from a reaction; returns the score. Raises for non-rating emoji."""
        score = RATING_EMOJI.get(emoji)
        if score is None:
            raise InvalidRequest(f"{emoji} is not a rating: use 👍 or 👎.")
        rated = await self.get(generation_id)
        await self._db.run(self._generations.rate, generation_id, rater_id, score, emoji)
        self.arms.rated(rated.experiment_id)  # the A/B rule looks, in the background
        return score

    async def unrate(self, generation_id: int, rater_id: str, emoji: str | None = None) -> bool:
        """Remove a rating; with `emoji`, only if that reaction is the current rating."""
        return await self._db.run(self._generations.unrate, generation_id, rater_id, emoji)

    async def report(self, generation_id: int, reporter_id: str) -> ReportOutcome:
        """A member's 🚩 on an output (once per member); `REPORTS_TO_HIDE` of them hide it."""
        await self.get(generation_id)
        outcome = await self._db.run(
            self._reports.add, generation_id, reporter_id, self.config.reports_to_hide
        )
        if outcome.newly_hidden:
            log.warning("generation %d hidden after %d reports", generation_id, outcome.reports)
        return outcome

    def stop(self, origin: Origin) -> int:
        """Stop the member's running generations (⏹); how many. Their streams end `Cancelled`."""
        handles = self._running.pop((origin.platform, origin.user_id), set())
        for handle in handles:
            handle.cancel()
        return len(handles)

    async def rules_for(self, origin: Origin) -> ServerSettingsRecord:
        """The settings of the server a request came from (defaults outside servers); read
        lately ones without a trip to the database, as every request needs them."""
        if origin.guild_id is None:
            return ServerSettingsRecord(origin.platform, "")
        if (recent := self._servers.recent(origin.platform, origin.guild_id)) is not None:
            return recent
        return await self._db.run(self._servers.get, origin.platform, origin.guild_id)

    async def _admit(self, origin: Origin) -> ServerSettingsRecord:
        """The server's rules, after checking the channel (a thread's: its channel's)."""
        rules = await self.rules_for(origin)
        here = {origin.channel_id, origin.parent_channel_id}
        if rules.allowed_channels and not here & set(rules.allowed_channels):
            raise NotAllowedHere(rules.allowed_channels)
        return rules

    async def _screen(self, origin: Origin, text: str, rules: ServerSettingsRecord) -> None:
        """A member's words go to the model only when moderation passes them."""
        verdict = await self.moderator.check(text, rules.blocklist)
        if verdict.flagged:
            log.info("prompt refused for %s/%s: %s", origin.platform, origin.user_id, verdict)
            self.observer.moderated("prompt_refused", verdict.reason)
            raise PromptRefused(verdict)

    def _count(self, origin: Origin, rules: ServerSettingsRecord) -> None:
        """Count a valid request against the member's cooldown (`CoolingDown` if too soon)."""
        seconds = self.config.cooldown_s if rules.cooldown_s is None else rules.cooldown_s
        wait = self._cooldown.hit((origin.platform, origin.user_id), seconds)
        if wait is not None:
            raise CoolingDown(wait)

    async def _run(
        self,
        origin: Origin,
        prompt: str,
        params: SamplingParams,
        kind: str,
        parent: GenerationRecord | None,
        conversation_of: GenerationRecord | None = None,
        *,
        rules: ServerSettingsRecord,
        template: str | None = None,
        cut: tuple[bool, bool] = (False, False),  # (text left out, and for the first time)
    ) -> AsyncIterator[GenerateEvent]:
        request_id = uuid.uuid4().hex[:12]
        version, arm = await self.lines.choose(origin, self.arms)
        request = GenerationRequest(prompt, params, origin.user_id, request_id, version)
        try:
            handle = self.backend.submit(request)
        except Busy:
            self.observer.refused("busy")
            raise
        member = (origin.platform, origin.user_id)
        self._running.setdefault(member, set()).add(handle)
        gates: dict[int, StreamGate] = {}

        async def check(text: str) -> Verdict:
            return await self.moderator.check(text, rules.blocklist)

        try:
            async for event in handle:
                if not isinstance(event, Chunk):
                    yield event
                    continue
                gate = gates.setdefault(
                    event.sample, StreamGate(check, self.config.moderation_window_chars)
                )
                if published := await gate.feed(event.text):
                    yield Chunk(event.sample, published)
            result = await handle.result()
            verdicts = []
            for index, output in enumerate(result.texts):
                gate = gates.get(index) or StreamGate(check, self.config.moderation_window_chars)
                verdict, rest = await gate.finish(output)
                verdicts.append(verdict)
                if rest:
                    yield Chunk(index, rest)
        finally:
            handle.cancel()  # no-op when finished; stops the work if the caller went away
            running = self._running.get(member)
            if running is not None:
                running.discard(handle)
                if not running:
                    del self._running[member]
        self.observer.finished(origin.platform, result)
        experiment_id, served_arm = Arms.served(arm, result.model_version)
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
                prompt_truncated=result.prompt_truncated or cut[0],
                kind=kind,
                parent_id=parent.id if parent else None,
                conversation_id=conversation_of.conversation_id if conversation_of else None,
                flagged=verdicts[index].reason if verdicts[index].flagged else None,
                experiment_id=experiment_id,
                arm=served_arm,
                template=template,
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
        report_withheld(self.observer, request_id, records)
        visible = [shown(r) for r in records]
        notice = CONTEXT_NOTICE if cut[1] else None
        yield Finished(visible, replace(result, texts=[r.output for r in visible]), notice)


def _readable_by(generation: GenerationRecord, origin: Origin) -> bool:
    if generation.platform != origin.platform:
        return False
    mine = generation.user_id == origin.user_id
    return mine or (origin.guild_id is not None and generation.guild_id == origin.guild_id)


def _fresh_params(generation: GenerationRecord, rules: ServerSettingsRecord) -> SamplingParams:
    """The generation's parameters for one more sample with a new seed, within the caps."""
    stored = SamplingParams(**{**generation.params, "seed": generation.seed})
    return within_caps(replace(stored, samples=1, seed=secrets.randbelow(MAX_SEED + 1)), rules)


async def _last(stream: AsyncIterator[GenerateEvent]) -> Finished:
    last: GenerateEvent | None = None
    async for event in stream:
        last = event
    if not isinstance(last, Finished):  # the stream always ends with Finished or raises
        raise RuntimeError("generation ended without a result")
    return last
