"""Talking to the bot in messages: a reply to an output continues it with the reply's words, a
message that mentions the bot generates from its text, and in a story thread every message is
the story's next turn.

Without the privileged message-content intent Discord still delivers the text of messages that
mention the bot (a reply mentions its author unless the member turns that off) and of direct
messages; `DISCORD_MESSAGE_CONTENT=true` (with the intent turned on in the developer portal)
lets story threads go on without mentions. Messages from bots, and messages that are none of
the three, are ignored without a database lookup where the channel tells (a text channel is
never a story thread).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Literal

import discord

from admin.auth import AdminPolicy
from bot.chat import ChatService, Finished, GenerateEvent, Origin
from bot.platforms.discord import render
from bot.platforms.discord.commands import PLATFORM
from bot.platforms.discord.jobs import InFlight, ShuttingDown, close_stream, describe_error
from bot.platforms.discord.streaming import NO_MENTIONS, ChannelSurface, StreamPublisher
from bot.story import StoryEnded, StoryThreads
from storage import GenerationRecord

log = logging.getLogger(__name__)

THREAD_NAME_CHARS = 60  # of the prompt, as the story thread's name (Discord allows 100)
ArchiveAfter = Literal[60, 1440, 4320, 10080]
ARCHIVE_AFTER_MINUTES: tuple[ArchiveAfter, ...] = (60, 1440, 4320, 10080)  # what Discord takes


def _archive_after(idle_minutes: float) -> ArchiveAfter:
    """The shortest auto-archive duration Discord accepts that covers the idle time."""
    return next((m for m in ARCHIVE_AFTER_MINUTES if m >= idle_minutes), ARCHIVE_AFTER_MINUTES[-1])


class MessageHandler:
    """Replies, mentions and story-thread turns, as calls of the chat use-cases."""

    def __init__(
        self,
        client: discord.Client,
        chat: ChatService,
        stories: StoryThreads,
        inflight: InFlight,
        edit_interval_s: float,
        *,
        dm_policy: str,
        admins: AdminPolicy,
        reads_all: bool,
    ) -> None:
        self.client = client
        self.chat = chat
        self.stories = stories
        self.inflight = inflight
        self.edit_interval_s = edit_interval_s
        self.dm_policy = dm_policy
        self.admins = admins
        self.reads_all = reads_all  # the message-content intent: thread turns need no mention

    async def on_message(self, message: discord.Message) -> None:
        me = self.client.user
        if me is None or message.author.bot or self.inflight.closing:
            return
        if message.guild is not None and not isinstance(message.channel, discord.TextChannel):
            # maybe a story thread: take a place in its line before anything is awaited
            async with self.stories.in_line(PLATFORM, str(message.channel.id)):
                story = await self.stories.starter(PLATFORM, str(message.channel.id))
                await self._handle(message, me.id, story)
        else:
            await self._handle(message, me.id, None)

    async def _handle(
        self, message: discord.Message, my_id: int, story: GenerationRecord | None
    ) -> None:
        mentioned = any(user.id == my_id for user in message.mentions)
        in_server = message.guild is not None
        replied = None if story is not None else await self._replied_output(message)
        if in_server and story is None and replied is None and not mentioned:
            return  # talk among members
        if not in_server and (refusal := self._dm_refusal(message.author.id)):
            await self._note(message, refusal)
            return
        if not message.content:  # the text was withheld from the bot (no mention, no intent)
            if replied is not None:
                await self._note(message, render.CONTENT_HIDDEN)
            return
        text = re.sub(rf"<@!?{my_id}>", "", message.content).strip()
        origin = Origin(
            platform=PLATFORM,
            user_id=str(message.author.id),
            guild_id=str(message.guild.id) if message.guild else None,
            channel_id=str(message.channel.id),
            parent_channel_id=_parent_id(message.channel),
        )
        if story is not None:
            await self._story_turn(message, origin, story, text)
        elif replied is not None:
            stream = self.chat.continue_stream(replied.id, origin, added=text)
            await self._answer(message, stream, "…", show_prompt=False)
        else:
            await self._answer(message, self.chat.generate_stream(origin, text), text)

    async def open_story(self, output: discord.Message, prompt: str) -> None:
        """Open a story thread on an output (`/generate thread:True`) and say how it works."""
        name = " ".join(prompt.split())[:THREAD_NAME_CHARS] or "story"
        idle = self.stories.idle.total_seconds() / 60
        thread = await output.create_thread(name=name, auto_archive_duration=_archive_after(idle))
        opening = render.story_opening(self.stories.max_turns, idle, not self.reads_all)
        await thread.send(opening, allowed_mentions=NO_MENTIONS)

    async def _story_turn(
        self, message: discord.Message, origin: Origin, story: GenerationRecord, text: str
    ) -> None:
        try:
            turn = await self.stories.turn(PLATFORM, str(message.channel.id), story)
        except StoryEnded as ended:
            await self._end_story(message.channel, str(ended))
            return
        stream = self.chat.continue_stream(turn.last.id, origin, added=text)
        answered = await self._answer(message, stream, "…", show_prompt=False)
        if answered and turn.left <= 0:
            await self._end_story(message.channel, self.stories.ended_by_turns())

    async def _end_story(self, channel: discord.abc.Messageable, sentence: str) -> None:
        """Say why the story ends, then archive and lock its thread (said once: a locked
        thread takes no more messages from members)."""
        await channel.send(f"🧵 {sentence}", allowed_mentions=NO_MENTIONS)
        thread_id: int = getattr(channel, "id", 0)
        try:
            await self.client.http.edit_channel(thread_id, archived=True, locked=True)
        except discord.HTTPException as error:  # no Manage Threads: it stays open, said anyway
            log.info("could not lock story thread %s: %s", thread_id, error)

    async def _answer(
        self,
        message: discord.Message,
        stream: AsyncIterator[GenerateEvent],
        prompt: str,
        show_prompt: bool = True,
    ) -> bool:
        """Stream the answer as a reply to the member's message; a refusal is a short reply.
        Whether an answer was made."""
        made: list[Finished] = []
        surface = ChannelSurface(message.channel, message.to_reference(fail_if_not_exists=False))

        async def tell(error: Exception) -> None:
            sentence = describe_error(error, f"message {message.id}")
            await surface.fail(
                f"<@{message.author.id}> {sentence}", keep=isinstance(error, ShuttingDown)
            )

        async def work() -> None:
            first = await anext(stream)  # invalid, refused or busy: raised before any post
            await surface.start(render.WRITING)
            publisher = StreamPublisher(self.chat, surface, self.edit_interval_s, show_prompt)
            made.append(await publisher.run(prompt, stream, first))

        try:
            await self.inflight.run(work(), tell)
        finally:
            await close_stream(stream)
        return bool(made)

    async def _replied_output(self, message: discord.Message) -> GenerationRecord | None:
        reference = message.reference
        if reference is None or reference.message_id is None:
            return None
        replied_to = reference.resolved  # Discord sends the replied message along, usually
        if isinstance(replied_to, discord.Message) and replied_to.author != self.client.user:
            return None  # a reply among members: no lookup
        return await self.chat.find_by_message(PLATFORM, str(reference.message_id))

    def _dm_refusal(self, user_id: int) -> str | None:
        """`DISCORD_DM_POLICY` for messages, as for /generate."""
        if self.dm_policy == "allow":
            return None
        if self.dm_policy == "admins" and str(user_id) in self.admins.owner_ids:
            return None
        return render.DM_DENIED if self.dm_policy == "deny" else render.DM_ADMINS_ONLY

    async def _note(self, message: discord.Message, sentence: str) -> None:
        try:
            await message.reply(sentence, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as error:
            log.info("could not answer message %s: %s", message.id, error)


def _parent_id(channel: object) -> str | None:
    """A thread's channel (where the server's allowed channels are checked)."""
    parent = getattr(channel, "parent_id", None)
    return str(parent) if parent else None
