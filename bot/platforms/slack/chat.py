"""The chat side of Slack: `/generate` and reactions, as thin handlers over `ChatService`.

Reactions on an answer: :+1: / :-1: rate it (another rating by the same person replaces it,
removing the reaction removes it), :repeat: writes another take, :fast_forward: continues it,
:triangular_flag_on_post: reports it (once `REPORTS_TO_HIDE` members did, its text is hidden).
Regenerations and continuations are posted in the thread of the conversation's first answer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat import RATING_EMOJI, ChatService, Finished, GenerateEvent, Origin
from bot.params import InvalidRequest
from bot.platforms.slack.stream import EDIT_INTERVAL_S, SlackStream, Target, message_id
from bot.platforms.slack.text import (
    GENERATE_USAGE,
    escape,
    parse_generate,
    reaction_name,
    slack_error,
)
from bot.screening import HIDDEN_TEXT
from model.backends.base import BackendError
from storage import GenerationRecord

log = logging.getLogger(__name__)

PLATFORM = "slack"
REGENERATE_REACTION = "repeat"
CONTINUE_REACTION = "fast_forward"
REPORT_REACTION = "triangular_flag_on_post"  # 🚩
NOT_IN_CHANNEL = (
    "I can't post in this channel yet: invite me with `/invite @gpt2bot`, then try again."
)
STOP_GRACE_S = 5.0
# Slack re-sends an event it thinks was lost (same event_id); a repeated :repeat: must not
# write two answers. Remember this many recent event ids.
SEEN_EVENTS = 1000
SHUTTING_DOWN = "The bot is restarting, so this answer was stopped. Please ask again in a minute."

Say = Callable[[str], Awaitable[Any]]


def incident_sentence(error: BaseException) -> str:
    """Log an unexpected error with an id and return the sentence users see instead."""
    incident = uuid.uuid4().hex[:8]
    log.error("slack handler failed (incident %s)", incident, exc_info=error)
    return f"Something went wrong on our side (incident {incident}). Please try again later."


def _privately(respond: AsyncRespond) -> Say:
    """Answer through the slash command's response URL, visible to its user alone."""

    async def say(text: str) -> None:
        await respond(text=text, response_type="ephemeral")

    return say


class SlackChat:
    """Handlers for `/generate` and reaction events; bolt injects their arguments by name."""

    def __init__(self, chat: ChatService, edit_interval_s: float = EDIT_INTERVAL_S) -> None:
        self._chat = chat
        self._interval = edit_interval_s
        self._inflight: dict[asyncio.Task[Any], SlackStream] = {}
        self._seen_events: OrderedDict[str, None] = OrderedDict()

    async def generate(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        """`/generate [option=value ...] prompt`: write a continuation of the prompt."""
        try:
            options, prompt = parse_generate(command.get("text", ""))
        except InvalidRequest as error:
            await ack(text=str(error))
            return
        if not prompt or prompt.lower() == "help":
            await ack(text=GENERATE_USAGE)
            return
        await ack()
        user, channel = command["user_id"], command["channel_id"]
        shown = escape(" ".join(f"{k}={v}" for k, v in options.items()))
        target = Target(
            channel=channel,
            header=f"<@{user}> asked" + (f" with `{shown}`" if shown else "") + ":",
            prompt=prompt,
        )
        origin = Origin(PLATFORM, user, command.get("team_id"), channel)
        stream = self._chat.generate_stream(origin, prompt, options)
        await self.render(client, target, stream, say=_privately(respond))

    async def reaction_added(
        self,
        event: dict[str, Any],
        body: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        """Rate, regenerate or continue the answer the reaction is on."""
        if self.seen(body.get("event_id")):
            return
        found = await self._reacted_generation(event, context)
        if found is None:
            return
        generation, user, name = found
        origin = Origin(PLATFORM, user, context.team_id, event["item"]["channel"])
        if name in RATING_EMOJI:
            await self._chat.rate(generation.id, user, name)
        elif name == REPORT_REACTION:
            await self._report(client, generation, user)
        elif name == REGENERATE_REACTION:
            target = await self._follow_up(generation, origin, "another take on")
            stream = self._chat.regenerate_stream(generation.id, origin)
            await self.render(client, target, stream, say=self.ephemeral(client, origin))
        elif name == CONTINUE_REACTION:
            target = await self._follow_up(generation, origin, "continued", show_prompt=False)
            stream = self._chat.continue_stream(generation.id, origin)
            await self.render(client, target, stream, say=self.ephemeral(client, origin))

    async def _report(
        self, client: AsyncWebClient, generation: GenerationRecord, user: str
    ) -> None:
        """Count the member's report; once enough members reported it, hide the text."""
        outcome = await self._chat.report(generation.id, user)
        log.info("generation %s reported by %s (%d)", generation.id, user, outcome.reports)
        if not outcome.newly_hidden or not generation.message_id:
            return
        channel, _, ts = generation.message_id.partition(":")
        try:
            await client.chat_update(channel=channel, ts=ts, text=HIDDEN_TEXT)
        except SlackApiError as error:
            log.warning("could not hide message %s: %s", generation.message_id, slack_error(error))

    async def reaction_removed(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """Removing a rating reaction removes the rating (if it is still the current one)."""
        found = await self._reacted_generation(event, context)
        if found is not None and found[2] in RATING_EMOJI:
            generation, user, name = found
            await self._chat.unrate(generation.id, user, name)

    async def stop(self) -> None:
        """Stop in-flight answers and tell their readers."""
        inflight = dict(self._inflight)
        for task in inflight:
            task.cancel()
        if inflight:  # let them unwind first, so no late edit overwrites the notice
            await asyncio.wait(inflight, timeout=STOP_GRACE_S)
        for stream in inflight.values():
            if stream.finished:  # only its affordance reactions were still being added
                continue
            try:
                await stream.fail(SHUTTING_DOWN)
            except SlackApiError as error:
                log.warning("could not mark an answer as stopped: %s", slack_error(error))

    def seen(self, event_id: str | None) -> bool:
        """True for an event already handled (Slack's retry of it)."""
        if event_id is None:
            return False
        if event_id in self._seen_events:
            log.info("ignoring a repeated delivery of event %s", event_id)
            return True
        self._seen_events[event_id] = None
        if len(self._seen_events) > SEEN_EVENTS:
            self._seen_events.popitem(last=False)
        return False

    async def _reacted_generation(
        self, event: dict[str, Any], context: AsyncBoltContext
    ) -> tuple[GenerationRecord, str, str] | None:
        item = event.get("item") or {}
        user = event.get("user")
        if item.get("type") != "message" or not user or user == context.bot_user_id:
            return None  # not a message, or the bot's own affordance reactions
        name = reaction_name(event.get("reaction", ""))
        if name not in RATING_EMOJI and name not in (
            REGENERATE_REACTION,
            CONTINUE_REACTION,
            REPORT_REACTION,
        ):
            return None
        generation = await self._chat.find_by_message(
            PLATFORM, message_id(item["channel"], item["ts"])
        )
        return None if generation is None else (generation, user, name)

    async def _follow_up(
        self, generation: GenerationRecord, origin: Origin, verb: str, show_prompt: bool = True
    ) -> Target:
        """Where a regeneration or continuation goes: the thread of the conversation's start."""
        first = (await self._chat.conversation(generation.conversation_id))[0]
        root = (first.message_id or "").partition(":")[2] or None
        header = f"<@{origin.user_id}> {verb} #{generation.id}:"
        prompt = generation.prompt if show_prompt else ""
        return Target(str(origin.channel_id), header, prompt, thread_ts=root)

    def ephemeral(self, client: AsyncWebClient, origin: Origin) -> Say:
        async def say(text: str) -> None:
            await client.chat_postEphemeral(
                channel=str(origin.channel_id), user=origin.user_id, text=text
            )

        return say

    async def render(
        self,
        client: AsyncWebClient,
        target: Target,
        events: AsyncIterator[GenerateEvent],
        say: Say,
    ) -> bool:
        """Drive a generation's events into Slack messages; errors become sentences. Whether
        the answer was written to the end."""
        stream = SlackStream(client, target, self._interval)
        task = asyncio.current_task()
        if task is not None:
            self._inflight[task] = stream
        try:
            await self._stream(stream, events, say)
        finally:
            if task is not None:
                self._inflight.pop(task, None)
        return stream.finished

    async def _stream(
        self, stream: SlackStream, events: AsyncIterator[GenerateEvent], say: Say
    ) -> None:
        try:
            # Nothing is posted before the first event: invalid requests are answered privately.
            async for event in events:
                if isinstance(event, Finished):
                    await stream.finish(event.generations, self._attach, event.notice)
                else:
                    await stream.on_event(event)
            await stream.add_affordances()
        except (InvalidRequest, BackendError) as error:
            await self._show_error(stream, str(error), say)
        except SlackApiError as error:
            if slack_error(error) in ("not_in_channel", "channel_not_found"):
                await say(NOT_IN_CHANNEL)
            else:
                await self._show_error(stream, incident_sentence(error), say)
        except Exception as error:
            await self._show_error(stream, incident_sentence(error), say)

    async def _attach(self, generation: GenerationRecord, stored_id: str) -> None:
        await self._chat.attach_message(generation.id, stored_id)

    @staticmethod
    async def _show_error(stream: SlackStream, sentence: str, say: Say) -> None:
        if stream.posted:
            await stream.fail(sentence)
        else:
            await say(sentence)
