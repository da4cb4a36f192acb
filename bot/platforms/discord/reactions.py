"""Reactions on the bot's outputs: 👍/👎 rate, 🔁 regenerates, ⏩ continues.

Raw reaction events are used so that reactions on old messages (no longer in discord.py's
message cache) still count. The message is looked up in our database; reactions by the bot
itself and reactions on any other message are ignored.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import discord

from bot.chat import (
    CONTINUE_EMOJI,
    RATING_EMOJI,
    REGENERATE_EMOJI,
    REPORT_EMOJI,
    STOP_EMOJI,
    ChatService,
    GenerateEvent,
    Origin,
)
from bot.platforms.discord.commands import PLATFORM
from bot.platforms.discord.jobs import (
    InFlight,
    ShuttingDown,
    close_stream,
    describe_error,
)
from bot.platforms.discord.streaming import ChannelSurface, StreamPublisher
from bot.screening import HIDDEN_TEXT
from storage import GenerationRecord

log = logging.getLogger(__name__)

STARTING = {REGENERATE_EMOJI: "🔁 writing another take…", CONTINUE_EMOJI: "⏩ continuing…"}


class ReactionHandler:
    """Turns raw reaction events into rate/unrate/regenerate/continue calls."""

    def __init__(
        self,
        client: discord.Client,
        chat: ChatService,
        inflight: InFlight,
        edit_interval_s: float,
    ) -> None:
        self.client = client
        self.chat = chat
        self.inflight = inflight
        self.edit_interval_s = edit_interval_s

    async def _target(self, event: discord.RawReactionActionEvent) -> GenerationRecord | None:
        """The generation the reaction is about, or None when it is not ours to handle."""
        emoji = str(event.emoji)
        if emoji not in RATING_EMOJI and emoji not in STARTING and emoji != REPORT_EMOJI:
            return None
        if self.client.user is None or event.user_id == self.client.user.id:
            return None
        return await self.chat.find_by_message(PLATFORM, str(event.message_id))

    async def on_add(self, event: discord.RawReactionActionEvent) -> None:
        if str(event.emoji) in STOP_EMOJI and event.user_id != getattr(self.client.user, "id", 0):
            origin = Origin(PLATFORM, str(event.user_id))
            stopped = self.chat.stop(origin)  # only the member's own generations
            log.info("member %s stopped %d generation(s)", event.user_id, stopped)
            return
        record = await self._target(event)
        if record is None:
            return
        emoji, user = str(event.emoji), str(event.user_id)
        if emoji == REPORT_EMOJI:
            await self._report(event, record)
        elif emoji in RATING_EMOJI:
            before = next((r.emoji for r in record.ratings if r.rater_id == user), None)
            await self.chat.rate(record.id, user, emoji)
            log.info("generation %s rated %s by %s", record.id, emoji, user)
            if before is not None and before != emoji:
                await self._remove_reaction(event, before)
        elif not self.inflight.closing:
            await self._follow_up(event, record, emoji)

    async def _report(
        self, event: discord.RawReactionActionEvent, record: GenerationRecord
    ) -> None:
        """🚩: count the member's report; once enough members reported it, hide the output."""
        outcome = await self.chat.report(record.id, str(event.user_id))
        log.info("generation %s reported by %s (%d)", record.id, event.user_id, outcome.reports)
        if not outcome.newly_hidden:
            return
        channel = self.client.get_partial_messageable(event.channel_id, guild_id=event.guild_id)
        try:
            await channel.get_partial_message(event.message_id).edit(content=HIDDEN_TEXT)
        except discord.HTTPException as error:
            log.warning("could not hide message %s: %s", event.message_id, error)

    async def on_remove(self, event: discord.RawReactionActionEvent) -> None:
        record = await self._target(event)
        if record is None or str(event.emoji) not in RATING_EMOJI:
            return
        # only when the removed reaction is the current rating (👍→👎 replaced it already)
        if await self.chat.unrate(record.id, str(event.user_id), str(event.emoji)):
            log.info("generation %s: rating by %s removed", record.id, event.user_id)

    async def _remove_reaction(self, event: discord.RawReactionActionEvent, emoji: str) -> None:
        """Take away the user's earlier thumb so the message shows their one rating."""
        channel = self.client.get_partial_messageable(event.channel_id)
        message = channel.get_partial_message(event.message_id)
        try:
            await message.remove_reaction(emoji, discord.Object(event.user_id))
        except discord.HTTPException:  # no Manage Messages permission: the rating is right anyway
            log.debug("could not remove %s of user %s", emoji, event.user_id)

    async def _follow_up(
        self, event: discord.RawReactionActionEvent, record: GenerationRecord, emoji: str
    ) -> None:
        channel = self.client.get_partial_messageable(event.channel_id, guild_id=event.guild_id)
        reference = discord.MessageReference(
            message_id=event.message_id, channel_id=event.channel_id, fail_if_not_exists=False
        )
        surface = ChannelSurface(channel, reference)
        origin = Origin(
            platform=PLATFORM,
            user_id=str(event.user_id),
            guild_id=str(event.guild_id) if event.guild_id else None,
            channel_id=str(event.channel_id),
        )
        start: Callable[[int, Origin], AsyncIterator[GenerateEvent]] = (
            self.chat.regenerate_stream if emoji == REGENERATE_EMOJI else self.chat.continue_stream
        )

        async def tell(error: Exception) -> None:
            message = describe_error(error, f"{emoji} on generation {record.id}")
            # while shutting down there is no later to delete the note in
            await surface.fail(
                f"<@{event.user_id}> {message}", keep=isinstance(error, ShuttingDown)
            )

        stream = start(record.id, origin)
        try:
            await self.inflight.run(self._answer(surface, record, emoji, stream), tell)
        finally:
            await close_stream(stream)

    async def _answer(
        self,
        surface: ChannelSurface,
        record: GenerationRecord,
        emoji: str,
        stream: AsyncIterator[GenerateEvent],
    ) -> None:
        first = await anext(stream)  # invalid or busy: raised before anything is posted
        await surface.start(STARTING[emoji])
        regenerate = emoji == REGENERATE_EMOJI
        publisher = StreamPublisher(
            self.chat, surface, self.edit_interval_s, show_prompt=regenerate
        )
        await publisher.run(record.prompt, stream, first)
