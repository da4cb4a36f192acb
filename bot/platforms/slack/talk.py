"""Talking to the bot in Slack messages: a mention generates, and an output's thread is its
story thread, where each member message continues the story (Slack has no reply to one
message: a reply in the output's thread is that).

Slack sends both `app_mention` and `message` for a message that mentions the bot in a
thread; the `message` handler leaves those to `app_mention`. Messages of bots (the bot's own
answers included), edits and other subtypes are ignored. The thread's turns are stored with
`CHANNEL:THREAD_TS` as their channel (the output's own message id), so the server's allowed
channels are checked on the channel itself.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat import ChatService, Origin
from bot.platforms.slack.chat import PLATFORM, SlackChat
from bot.platforms.slack.stream import Target, message_id
from bot.platforms.slack.text import slack_error
from bot.story import StoryEnded, StoryThreads
from storage import GenerationRecord

log = logging.getLogger(__name__)

IGNORED_SUBTYPES = frozenset({"bot_message", "message_changed", "message_deleted"})


class SlackTalk:
    """Handlers for `app_mention` and `message` events; bolt injects their arguments."""

    def __init__(self, chat: ChatService, slack: SlackChat, stories: StoryThreads) -> None:
        self._chat = chat
        self._slack = slack
        self._stories = stories

    async def app_mention(
        self,
        event: dict[str, Any],
        body: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        """A mention: the next turn in a story thread, else a new generation from its text."""
        if self._slack.seen(body.get("event_id")) or _from_a_bot(event):
            return
        text = re.sub(rf"<@{context.bot_user_id}>", "", event.get("text", "")).strip()
        if _in_thread(event):
            await self._threaded(event, text, client, context, mentioned=True)
            return
        await self._generate(event, text, client, context)

    async def message(
        self,
        event: dict[str, Any],
        body: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        """A message in the thread of one of the bot's outputs: the story's next turn."""
        text = event.get("text", "")
        if not _in_thread(event) or _from_a_bot(event) or f"<@{context.bot_user_id}>" in text:
            return  # top-level talk, the bot's own posts, or app_mention's to answer
        if self._slack.seen(body.get("event_id")):
            return
        await self._threaded(event, text.strip(), client, context, mentioned=False)

    async def _generate(
        self,
        event: dict[str, Any],
        text: str,
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        user, channel = event["user"], event["channel"]
        origin = Origin(PLATFORM, user, context.team_id, channel)
        target = Target(channel, f"<@{user}> mentioned me:", text, event.get("thread_ts"))
        stream = self._chat.generate_stream(origin, text)
        await self._slack.render(client, target, stream, say=self._slack.ephemeral(client, origin))

    async def _threaded(
        self,
        event: dict[str, Any],
        text: str,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        mentioned: bool,
    ) -> None:
        channel, thread_ts = event["channel"], event["thread_ts"]
        key = message_id(channel, thread_ts)
        # the place in the thread's line is taken before anything is awaited: turns in order
        async with self._stories.in_line(PLATFORM, key):
            story = await self._stories.starter(PLATFORM, key)
            if story is not None:
                await self._turn(event, text, client, context, story)
            elif mentioned:  # a thread that is not a story: a mention there still generates
                await self._generate(event, text, client, context)

    async def _turn(
        self,
        event: dict[str, Any],
        text: str,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        story: GenerationRecord,
    ) -> None:
        user, channel, thread_ts = event["user"], event["channel"], event["thread_ts"]
        key = message_id(channel, thread_ts)
        say = self._slack.ephemeral(client, Origin(PLATFORM, user, context.team_id, channel))
        try:
            turn = await self._stories.turn(PLATFORM, key, story)
        except StoryEnded as ended:  # said to the member who wrote, not the whole thread
            await say(str(ended))
            return
        origin = Origin(PLATFORM, user, context.team_id, key, parent_channel_id=channel)
        target = Target(channel, f"<@{user}> wrote the next turn:", "", thread_ts)
        stream = self._chat.continue_stream(turn.last.id, origin, added=text)
        finished = await self._slack.render(client, target, stream, say=say)
        if finished and turn.left <= 0:
            try:
                await client.chat_postMessage(
                    channel=channel, thread_ts=thread_ts, text=self._stories.ended_by_turns()
                )
            except SlackApiError as error:
                log.warning("could not end story %s: %s", key, slack_error(error))


def _in_thread(event: dict[str, Any]) -> bool:
    thread_ts = event.get("thread_ts")
    return bool(thread_ts) and thread_ts != event.get("ts")


def _from_a_bot(event: dict[str, Any]) -> bool:
    return (
        bool(event.get("bot_id"))
        or event.get("subtype") in IGNORED_SUBTYPES
        or not event.get("user")
    )
