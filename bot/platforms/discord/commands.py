"""`/generate`: parse the options, call the chat use-case, stream the answer back.

Discord shows the limits (`app_commands.Range`) from `bot.params.LIMITS`, but Discord clients
are not the only senders and discord.py does not check ranges on incoming values, so the
use-case validates everything again. The interaction is acknowledged well within Discord's
3 s: invalid input and "busy" are known at once and answered privately; everything else is
deferred first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import discord
from discord import app_commands

from admin.auth import AdminPolicy
from bot.chat import ChatService, GenerateEvent, Origin
from bot.params import LIMITS, MAX_PROMPT_CHARS
from bot.platforms.discord import render
from bot.platforms.discord.jobs import (
    InFlight,
    close_stream,
    describe_error,
    expired,
    log_expired,
)
from bot.platforms.discord.streaming import InteractionSurface, StreamPublisher, send_ephemeral

log = logging.getLogger(__name__)

ANSWER_AT_ONCE_S = 0.5  # wait this long for a validation/busy error before deferring
DISCORD_MAX_INTEGER = 2**53 - 1  # Discord's integer options stop here (seeds above: CLI/web)
PLATFORM = "discord"


def _range(name: str) -> Any:
    kind, low, high, _, _ = LIMITS[name]
    if kind is int:
        return app_commands.Range[int, int(low), int(min(high, DISCORD_MAX_INTEGER))]
    return app_commands.Range[float, float(low), float(high)]


# Option types: module-level so discord.py can resolve the callback's annotations.
Prompt = app_commands.Range[str, 1, MAX_PROMPT_CHARS]
if TYPE_CHECKING:  # the ranges are built from bot.params.LIMITS at run time; mypy sees numbers
    Temperature: TypeAlias = float
    TopP: TypeAlias = float
    RepetitionPenalty: TypeAlias = float
    TopK: TypeAlias = int
    MaxNewTokens: TypeAlias = int
    Samples: TypeAlias = int
    Seed: TypeAlias = int
else:
    Temperature = _range("temperature")
    TopK = _range("top_k")
    TopP = _range("top_p")
    MaxNewTokens = _range("max_new_tokens")
    RepetitionPenalty = _range("repetition_penalty")
    Samples = _range("samples")
    Seed = _range("seed")

OPTION_HELP = {name: spec[4][:100] for name, spec in LIMITS.items()}
THREAD_HELP = "open a story thread on the answer: each message there continues the story"
StoryOpener = Callable[[discord.Message, str], Awaitable[None]]


class DirectMessagesRefused(app_commands.CheckFailure):
    """The DM policy does not allow this user to generate in direct messages."""


def origin_of(interaction: discord.Interaction) -> Origin:
    return Origin(
        platform=PLATFORM,
        user_id=str(interaction.user.id),
        guild_id=str(interaction.guild_id) if interaction.guild_id else None,
        channel_id=str(interaction.channel_id) if interaction.channel_id else None,
    )


class GenerateHandler:
    """State shared by every `/generate`: the use-case, limits, in-flight work."""

    def __init__(
        self,
        chat: ChatService,
        inflight: InFlight,
        edit_interval_s: float,
        dm_policy: str,
        admins: AdminPolicy,
        open_story: StoryOpener,
    ) -> None:
        self.chat = chat
        self.inflight = inflight
        self.edit_interval_s = edit_interval_s
        self.dm_policy = dm_policy
        self.admins = admins
        self.open_story = open_story  # `thread:True`: a story thread on the answer

    def check_direct_message(self, interaction: discord.Interaction) -> bool:
        if interaction.guild_id is not None or self.dm_policy == "allow":
            return True
        if self.dm_policy == "admins" and str(interaction.user.id) in self.admins.owner_ids:
            return True
        raise DirectMessagesRefused(
            render.DM_DENIED if self.dm_policy == "deny" else render.DM_ADMINS_ONLY
        )

    async def handle(
        self,
        interaction: discord.Interaction,
        prompt: str,
        raw: dict[str, Any],
        thread: bool = False,
    ) -> None:
        if self.inflight.closing:
            await send_ephemeral(interaction, render.NOT_ACCEPTING)
            return
        if thread and interaction.guild_id is None:
            await send_ephemeral(interaction, render.STORY_IN_DMS)
            return

        async def tell(error: Exception) -> None:
            if expired(error):
                log_expired(interaction, "/generate")
                return
            await send_ephemeral(interaction, describe_error(error, "/generate"))

        stream = self.chat.generate_stream(origin_of(interaction), prompt, raw)
        try:
            await self.inflight.run(self._answer(interaction, prompt, stream, thread), tell)
        finally:
            await close_stream(stream)

    async def _answer(
        self,
        interaction: discord.Interaction,
        prompt: str,
        stream: AsyncIterator[GenerateEvent],
        thread: bool,
    ) -> None:
        first_step = asyncio.ensure_future(anext(stream))
        try:
            await asyncio.wait({first_step}, timeout=ANSWER_AT_ONCE_S)
            if first_step.done() and first_step.exception() is not None:
                first_step.result()  # invalid or busy: answered privately, nothing deferred
            await interaction.response.defer(thinking=True)
            first = await first_step
        finally:
            first_step.cancel()
        publisher = StreamPublisher(
            self.chat, InteractionSurface(interaction), self.edit_interval_s
        )
        await publisher.run(prompt.strip(), stream, first)
        if thread and publisher.published:
            try:
                await self.open_story(publisher.published[0], prompt)
            except discord.HTTPException as error:
                log.warning("could not open a story thread: %s", error)
                await interaction.followup.send(render.STORY_NOT_STARTED, ephemeral=True)


def build_generate(handler: GenerateHandler) -> app_commands.Command[Any, Any, None]:
    """The `/generate` command bound to `handler`."""

    @app_commands.command(name="generate")
    @app_commands.describe(
        prompt="the start of the text the model continues", thread=THREAD_HELP, **OPTION_HELP
    )
    @app_commands.check(handler.check_direct_message)
    async def generate(
        interaction: discord.Interaction,
        prompt: Prompt,
        temperature: Temperature | None = None,
        top_k: TopK | None = None,
        top_p: TopP | None = None,
        max_new_tokens: MaxNewTokens | None = None,
        repetition_penalty: RepetitionPenalty | None = None,
        samples: Samples | None = None,
        seed: Seed | None = None,
        thread: bool | None = None,
    ) -> None:
        """Continue your text with the community's GPT-2; react to rate the answer."""
        raw = {
            "temperature": temperature,
            "top_k": top_k,
            "top_p": top_p,
            "max_new_tokens": max_new_tokens,
            "repetition_penalty": repetition_penalty,
            "samples": samples,
            "seed": seed,
        }
        await handler.handle(interaction, prompt, raw, thread=bool(thread))

    allow_dms = handler.dm_policy != "deny"
    app_commands.allowed_contexts(guilds=True, dms=allow_dms, private_channels=False)(generate)
    app_commands.allowed_installs(guilds=True, users=False)(generate)
    return generate


async def on_tree_error(
    interaction: discord.Interaction, error: app_commands.AppCommandError
) -> None:
    """Every command error becomes a short private sentence; details go to the log."""
    if isinstance(error, DirectMessagesRefused | app_commands.NoPrivateMessage):
        message = str(error) or render.DM_DENIED
    elif isinstance(error, app_commands.TransformerError):
        message = f"⚠️ {error.value!r} is not a valid value for that option."
    elif isinstance(error, app_commands.CommandNotFound | app_commands.CommandSignatureMismatch):
        message = "⚠️ This command changed; wait a minute for Discord to update it, then retry."
    else:
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if expired(cause):
            log_expired(interaction, f"command {interaction.command and interaction.command.name}")
            return
        message = describe_error(
            cause, f"command {interaction.command and interaction.command.name}"
        )
    try:
        await send_ephemeral(interaction, message)
    except discord.HTTPException:
        log.warning("could not tell user %s about a command error", interaction.user.id)
