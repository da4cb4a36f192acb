"""What every member can do with their own data: `/mydata export|delete`, `/history` and
`/conversation`. Answers are ephemeral and split into pages within Discord's limits.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import discord
from discord import app_commands

from bot.chat import ChatService, Origin
from bot.mydata import DELETE_WARNING, EXPORT_FILENAME, MyData, deleted_sentence
from bot.params import InvalidRequest
from bot.platforms.discord import render
from bot.platforms.discord.commands import PLATFORM
from storage import GenerationRecord

log = logging.getLogger(__name__)

SNIPPET_CHARS = 120  # of each prompt and output in /history and /conversation
ConversationId = app_commands.Range[int, 1, None]


def origin_of(interaction: discord.Interaction) -> Origin:
    guild = str(interaction.guild_id) if interaction.guild_id else None
    channel = str(interaction.channel_id) if interaction.channel_id else None
    return Origin(PLATFORM, str(interaction.user.id), guild, channel)


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    short = flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"
    return discord.utils.escape_markdown(discord.utils.escape_mentions(short))


def _line(generation: GenerationRecord, depth: int = 0) -> str:
    indent = "  " * depth + ("↳ " if depth else "")
    kind = {"regenerate": "🔁", "continue": "⏩", "reply": "💬"}.get(generation.kind, "•")
    if generation.redacted:
        return f"{indent}{kind} `#{generation.id}` (deleted by its author)"
    score = f" · {generation.net_score:+d}" if generation.ratings else ""
    text = f"**{_snippet(generation.prompt)}**{_snippet(generation.output)}"
    return f"{indent}{kind} `#{generation.id}`{score} {text}"


def history_text(generations: list[GenerationRecord]) -> str:
    if not generations:
        return "You have no generations here yet: try `/generate`."
    lines = ["**Your recent generations** (newest first; `/conversation id` reads one back)"]
    lines += [f"{_line(g)} · conversation `{g.conversation_id}`" for g in generations]
    return "\n".join(lines)


def conversation_text(chain: list[GenerationRecord]) -> str:
    """The conversation in order, each 🔁 sibling and ⏩ child under what it came from."""
    depth: dict[int, int] = {}
    lines = [f"**Conversation `{chain[0].conversation_id}`**"]
    for generation in chain:  # a 🔁 shares its original's parent, a ⏩ has it as parent
        parent = generation.parent_id
        depth[generation.id] = 0 if parent is None else depth.get(parent, 0) + 1
        lines.append(_line(generation, depth[generation.id]))
    return "\n".join(lines)


async def _pages(interaction: discord.Interaction, text: str) -> None:
    pages = render.split_text(text)
    await interaction.response.send_message(pages[0], ephemeral=True)
    for page in pages[1:]:
        await interaction.followup.send(page, ephemeral=True)


MemberCommand = app_commands.Group | app_commands.Command[Any, Any, None]


def build_member_commands(chat: ChatService, mydata: MyData) -> list[MemberCommand]:
    """`/mydata`, `/history` and `/conversation`, bound to the use-cases."""
    group = app_commands.Group(name="mydata", description="your own data: export or delete it")

    @group.command(name="export")
    async def export(interaction: discord.Interaction) -> None:
        """Get everything you generated and rated, as a JSON-lines file (only you see it)."""
        data = await mydata.export(origin_of(interaction))
        file = discord.File(io.BytesIO(data), filename=EXPORT_FILENAME)
        await interaction.response.send_message(
            "Here is your data: your prompts, outputs and ratings.", file=file, ephemeral=True
        )

    @group.command(name="delete")
    @app_commands.describe(confirm="True to delete for good")
    async def delete(interaction: discord.Interaction, confirm: bool = False) -> None:
        """Delete your prompts, outputs, ratings and training samples."""
        if not confirm:
            await interaction.response.send_message(
                f"{DELETE_WARNING} To go ahead: `/mydata delete confirm:True`.", ephemeral=True
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await mydata.delete(origin_of(interaction))
        log.info("member %s deleted their data: %s", interaction.user.id, report)
        await interaction.edit_original_response(content=deleted_sentence(report))

    @app_commands.command(name="history")
    async def history(interaction: discord.Interaction) -> None:
        """Your recent generations, newest first."""
        await _pages(interaction, history_text(await chat.history(origin_of(interaction))))

    @app_commands.command(name="conversation")
    @app_commands.describe(id="the conversation number shown by /history or under an output")
    async def conversation(interaction: discord.Interaction, id: ConversationId) -> None:
        """Read a conversation back in order, with its 🔁 and ⏩ branches."""
        try:
            chain = await chat.conversation(id, origin_of(interaction))
        except InvalidRequest as error:
            await interaction.response.send_message(f"⚠️ {error}", ephemeral=True)
            return
        await _pages(interaction, conversation_text(chain))

    return [group, history, conversation]
