"""Showing a generation on Discord while it streams, then as final, rateable messages.

A `Surface` is where the answer goes: the response of a `/generate` interaction, or a new
message in a channel (🔁 and ⏩ come from reactions, which cannot be answered directly).
`StreamPublisher` consumes the use-case's events and edits the surface at most once per
`edit_interval_s`; at the end each sample gets its own message(s), linked to its stored
generation so reactions find it, with the rating reactions added.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

import discord

from bot.chat import ChatService, Finished, GenerateEvent
from bot.platforms.discord import render
from model.backends.base import Chunk, Queued

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
ERROR_DELETE_AFTER_S = 30.0  # channel error notes (no ephemeral messages there) go away


class Surface(Protocol):
    """Where one generation is shown."""

    async def show(self, content: str) -> discord.Message:
        """Replace the working message's content (the first message of the answer)."""
        ...

    async def add(self, content: str) -> discord.Message:
        """Send one more message that belongs to the answer."""
        ...


class InteractionSurface:
    """The deferred response of an interaction and its follow-ups."""

    def __init__(self, interaction: discord.Interaction) -> None:
        self.interaction = interaction

    async def show(self, content: str) -> discord.Message:
        return await self.interaction.edit_original_response(
            content=content, allowed_mentions=NO_MENTIONS
        )

    async def add(self, content: str) -> discord.Message:
        return await self.interaction.followup.send(
            content, wait=True, allowed_mentions=NO_MENTIONS
        )


async def send_ephemeral(interaction: discord.Interaction, content: str) -> None:
    """A private note to the user: the first response, or instead of a public deferral."""
    if not interaction.response.is_done():
        await interaction.response.send_message(
            content, ephemeral=True, allowed_mentions=NO_MENTIONS
        )
        return
    try:  # the public "thinking…" message would otherwise stay forever
        await interaction.delete_original_response()
    except discord.HTTPException:
        log.debug("could not delete the original response of interaction %s", interaction.id)
    await interaction.followup.send(content, ephemeral=True, allowed_mentions=NO_MENTIONS)


class ChannelSurface:
    """A reply in a channel, started with a placeholder that is then edited."""

    def __init__(
        self, channel: discord.abc.Messageable, reply_to: discord.MessageReference | None
    ) -> None:
        self.channel = channel
        self.reply_to = reply_to
        self.message: discord.Message | None = None

    async def start(self, content: str) -> None:
        self.message = await self._send(content, self.reply_to)

    async def show(self, content: str) -> discord.Message:
        if self.message is None:
            self.message = await self._send(content, self.reply_to)
        else:
            self.message = await self.message.edit(content=content, allowed_mentions=NO_MENTIONS)
        return self.message

    async def add(self, content: str) -> discord.Message:
        return await self._send(content, None)

    async def fail(self, content: str, keep: bool = False) -> None:
        """Say it did not work, in place of the answer; the note goes away unless `keep`."""
        delete_after = None if keep else ERROR_DELETE_AFTER_S
        if self.message is None:
            await self._send(content, self.reply_to, delete_after)
        else:
            await self.message.edit(
                content=content, allowed_mentions=NO_MENTIONS, delete_after=delete_after
            )

    async def _send(
        self,
        content: str,
        reference: discord.MessageReference | None,
        delete_after: float | None = None,
    ) -> discord.Message:
        options: dict[str, Any] = {"allowed_mentions": NO_MENTIONS}
        if delete_after is not None:
            options["delete_after"] = delete_after
        if reference is not None:
            options["reference"] = reference
        return await self.channel.send(content, **options)


class StreamPublisher:
    """Renders one generation's events onto a surface."""

    def __init__(
        self,
        chat: ChatService,
        surface: Surface,
        edit_interval_s: float,
        show_prompt: bool = True,  # False for ⏩: the text so far is the message replied to
    ) -> None:
        self.chat = chat
        self.surface = surface
        self.edit_interval_s = edit_interval_s
        self.show_prompt = show_prompt
        self.published: list[discord.Message] = []  # each sample's last message, once done
        self._last_edit = float("-inf")

    async def run(
        self, prompt: str, events: AsyncIterator[GenerateEvent], first: GenerateEvent | None
    ) -> Finished:
        """Show `first` and the rest of `events` as they come; publish the final result."""
        texts: dict[int, str] = {}
        status: str | None = None
        pending = [first] if first is not None else []
        async for event in _chain(pending, events):
            if isinstance(event, Finished):
                await self.publish(event)
                return event
            if isinstance(event, Queued):
                status = render.queued(event.position)
            elif isinstance(event, Chunk):
                texts[event.sample] = texts.get(event.sample, "") + event.text
                status = None
            shown = prompt if self.show_prompt else "…"
            await self._maybe_edit(render.preview(shown, texts, status))
        raise RuntimeError("the generation stream ended without a result")

    async def _maybe_edit(self, content: str) -> None:
        now = time.monotonic()
        if now - self._last_edit < self.edit_interval_s:
            return
        self._last_edit = now
        await self.surface.show(content)

    async def publish(self, finished: Finished) -> list[discord.Message]:
        """Each sample in its own message(s); the last one carries the footer and reactions."""
        rated: list[discord.Message] = []
        count = len(finished.generations)
        for index, record in enumerate(finished.generations):
            if index == 0:
                prompt = record.prompt if self.show_prompt else "…"
                body = render.output_body(prompt, record.output)
            else:
                body = f"**Sample {index + 1}/{count}:**" + render.output_body(None, record.output)
            tail = render.footer(record, index, count, finished.notice)
            pages = render.paginate(body, tail)
            message: discord.Message | None = None
            for page_number, page in enumerate(pages):
                first = index == 0 and page_number == 0
                message = await (self.surface.show(page) if first else self.surface.add(page))
            assert message is not None  # paginate always returns at least one page
            await self.chat.attach_message(record.id, str(message.id))
            rated.append(message)
        await add_reactions(rated)
        self.published = rated
        return rated


async def add_reactions(messages: list[discord.Message]) -> None:
    """👍 👎 🔁 ⏩ under each message; a missing permission is logged, not fatal."""
    for message in messages:
        for emoji in render.REACTIONS:
            try:
                await message.add_reaction(emoji)
            except discord.Forbidden:
                log.warning(
                    "cannot add reactions in channel %s: give the bot the Add Reactions and "
                    "Read Message History permissions",
                    message.channel.id,
                )
                return


async def _chain(
    first: list[GenerateEvent], rest: AsyncIterator[GenerateEvent]
) -> AsyncIterator[GenerateEvent]:
    for event in first:
        yield event
    async for event in rest:
        yield event
