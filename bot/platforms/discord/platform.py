"""The Discord platform: a discord.py client wired to the chat and admin use-cases.

No privileged intents by default: slash commands arrive as interactions, reactions as raw
events, and Discord delivers the text of messages that mention the bot (replies and mentions)
without the message-content intent; `DISCORD_MESSAGE_CONTENT` asks for it (story threads
without mentions). The member list is never needed.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import INTERNAL_API_VERSION, Route

from bot.platforms.base import RunOptions, uses_config
from bot.platforms.discord.ab_commands import add_ab_commands
from bot.platforms.discord.admin_commands import AdminCommands, build_admin_group
from bot.platforms.discord.commands import GenerateHandler, build_generate, on_tree_error
from bot.platforms.discord.config import TOKEN_HELP, DiscordConfig, shard_options
from bot.platforms.discord.jobs import InFlight
from bot.platforms.discord.line_commands import add_line_commands
from bot.platforms.discord.member_commands import build_member_commands
from bot.platforms.discord.messages import MessageHandler
from bot.platforms.discord.reactions import ReactionHandler
from bot.platforms.discord.review_commands import add_review_commands
from bot.platforms.discord.server_commands import add_server_commands
from bot.platforms.discord.sync import sync_commands
from bot.settings import check_config
from bot.story import StoryThreads

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 5.0  # in-flight generations get this long to finish before being stopped


class DiscordSetupError(ValueError):
    """Discord cannot be used as configured; the message says what to change."""


def intents(message_content: bool = False) -> discord.Intents:
    """Servers (for roles and channels), reactions and messages; message content only when
    asked for (privileged)."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_reactions = True
    wanted.dm_reactions = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.message_content = message_content
    return wanted


def rest_base(url: str) -> str:
    """`DISCORD_API_BASE` as discord.py's route base: `/api/v10` is added when missing."""
    url = url.rstrip("/")
    if re.search(r"/api/v\d+$", url):
        return url
    return f"{url}/api/v{INTERNAL_API_VERSION}"


def apply_endpoints(config: DiscordConfig) -> None:
    """Point discord.py at a proxy or test server. Process-wide: discord.py keeps these on
    classes. A non-sharded client dials the gateway URL directly, so both are needed."""
    if config.api_base:
        Route.BASE = rest_base(config.api_base)
    if config.gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.gateway_url)


class GenerationClient(discord.Client):
    """The discord.py client; events are forwarded to the platform's handlers."""

    def __init__(self, platform: DiscordPlatform, **options: Any) -> None:
        # text only: no "PyNaCl/davey is not installed, voice will NOT be supported" warnings
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(
            intents=intents(platform.config.message_content),
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.platform = platform
        self.tree: app_commands.CommandTree[GenerationClient] = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        await sync_commands(self, self.tree, self.platform.config.guild_ids)

    async def on_ready(self) -> None:
        shards = getattr(self, "shards", None)  # AutoShardedClient: the ones this process runs
        where = f", shards {sorted(shards)} of {self.shard_count}" if shards else ""
        log.info(
            "connected to Discord as %s, in %d server(s)%s", self.user, len(self.guilds), where
        )

    async def on_message(self, message: discord.Message) -> None:
        try:
            await self.platform.messages.on_message(message)
        except Exception:
            log.exception("message %s by %s failed", message.id, message.author.id)

    async def on_raw_reaction_add(self, event: discord.RawReactionActionEvent) -> None:
        await self._guarded(self.platform.reactions.on_add, event)

    async def on_raw_reaction_remove(self, event: discord.RawReactionActionEvent) -> None:
        await self._guarded(self.platform.reactions.on_remove, event)

    @staticmethod
    async def _guarded(handler: Any, event: discord.RawReactionActionEvent) -> None:
        try:
            await handler(event)
        except Exception:
            log.exception(
                "reaction %s by %s on message %s failed",
                event.emoji,
                event.user_id,
                event.message_id,
            )


class ShardedGenerationClient(GenerationClient, discord.AutoShardedClient):
    """`DISCORD_SHARDS` set: one gateway connection per shard (Discord requires sharding
    from 2,500 servers); discord.py routes each event to the same handlers."""


def make_client(platform: DiscordPlatform) -> GenerationClient:
    options = shard_options(platform.config.shards)
    if options is None:
        return GenerationClient(platform)
    return ShardedGenerationClient(platform, **options)


class DiscordPlatform:
    """`gpt2bot run --platform discord`."""

    name = "discord"

    def __init__(
        self, app: App, config: DiscordConfig, shutdown_grace_s: float = SHUTDOWN_GRACE_S
    ) -> None:
        check_config(config)  # `gpt2bot run` checked it already; direct callers too
        self.config = config
        self.app = app
        self.shutdown_grace_s = shutdown_grace_s
        self.inflight = InFlight()
        self.client = make_client(self)
        self.messages = MessageHandler(
            self.client,
            app.chat,
            StoryThreads(app.chat, app.db, app.settings.chat),
            self.inflight,
            self.config.edit_interval_s,
            dm_policy=self.config.dm_policy,
            admins=app.gate.policy,
            reads_all=self.config.message_content,
        )
        self.generate = GenerateHandler(
            app.chat,
            self.inflight,
            self.config.edit_interval_s,
            self.config.dm_policy,
            app.gate.policy,
            self.messages.open_story,
        )
        self.reactions = ReactionHandler(
            self.client, app.chat, self.inflight, self.config.edit_interval_s
        )
        self.client.tree.add_command(build_generate(self.generate))
        admin_commands = AdminCommands(app)
        admin_group = build_admin_group(admin_commands)
        add_server_commands(admin_group, admin_commands)
        review = add_review_commands(admin_group, admin_commands, self.client)
        add_ab_commands(admin_group, admin_commands)
        add_line_commands(admin_group, admin_commands, review)
        self.client.tree.add_command(admin_group)
        for command in build_member_commands(app.chat, app.mydata):
            self.client.tree.add_command(command)
        self.client.tree.error(on_tree_error)
        self._stopping = False

    async def run(self) -> None:
        apply_endpoints(self.config)
        assert self.config.token is not None
        try:
            async with self.client:
                await self.client.start(self.config.token)
        except discord.LoginFailure:
            raise DiscordSetupError(
                f"DISCORD_TOKEN was rejected by Discord: {TOKEN_HELP}."
            ) from None
        except (aiohttp.ClientConnectionError, TimeoutError) as error:
            raise DiscordSetupError(
                f"cannot reach Discord's API at {Route.BASE} ({error}); check the network, "
                "or DISCORD_API_BASE if you set it"
            ) from None

    async def connected(self) -> bool:
        """Ready (logged in, servers received) and every gateway connection open."""
        client = self.client
        if not client.is_ready() or client.is_closed():
            return False
        shards = getattr(client, "shards", None)  # AutoShardedClient: one socket per shard
        if shards:
            return all(not shard.is_closed() for shard in shards.values())
        return client.ws is not None and client.ws.open

    async def stop(self) -> None:
        """Refuse new work, let running generations finish briefly, stop the rest, disconnect."""
        if self._stopping:
            return
        self._stopping = True
        running = len(self.inflight)
        stopped = await self.inflight.drain(self.shutdown_grace_s)
        log.info("shutting down: %d generation(s) finished, %d stopped", running - stopped, stopped)
        # discord.py does not cancel its "wait for more servers before on_ready" task on close;
        # left running, it dispatches into a closed client when we stop right after connecting
        ready_task = getattr(self.client._connection, "_ready_task", None)
        if ready_task is not None:
            ready_task.cancel()
        await self.client.close()


@uses_config(DiscordConfig)
def create(app: App, options: RunOptions, config: DiscordConfig) -> DiscordPlatform:
    """The `gpt2bot.platforms` entry point."""
    return DiscordPlatform(app, config)
