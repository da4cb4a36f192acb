"""`/admin server ...`: a server's own settings and outputs, for that server's admins (and the
bot's owners): where `/generate` may be used, the cooldown, caps, defaults and prompt template,
whether its ratings feed training, which roles are its admins, and deleting an output made in
it.
Authorized (scope "server") and audited by `AdminCommands.run` like every `/admin` command.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord
from discord import app_commands

from admin.auth import Actor
from admin.base import AdminServices
from bot.platforms.discord import admin_render
from bot.platforms.discord.admin_commands import AdminCommands, Reply, SampleId, Work
from bot.platforms.discord.commands import PLATFORM

log = logging.getLogger(__name__)


def _mentioned_ids(text: str) -> list[str]:
    """Channel or role ids from mentions (`<#1>`, `<@&2>`) or plain ids; "all" is none."""
    if text.strip().lower() in ("all", "any", "none", "-"):
        return []
    return re.findall(r"\d{5,25}", text)


def _setter(**changes: Any) -> Work:
    """The work of a command that changes some of the server's settings."""

    async def work(service: AdminServices, actor: Actor) -> Reply:
        assert actor.server_id is not None  # the group is guild-only
        record = await service.servers.update(actor.user_id, PLATFORM, actor.server_id, **changes)
        return Reply("Saved.\n" + admin_render.server_settings(record))

    return work


def add_server_commands(parent: app_commands.Group, admin: AdminCommands) -> None:
    """`/admin server ...` under `parent`: this server's own settings, for its admins."""
    server = app_commands.Group(
        name="server", description="this server's own settings", parent=parent
    )

    @server.command(name="show")
    async def show(interaction: discord.Interaction) -> None:
        """This server's settings: channels, cooldown, caps, defaults, training."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            assert actor.server_id is not None
            record = await service.servers.get(PLATFORM, actor.server_id)
            return Reply(admin_render.server_settings(record))

        await admin.run_work(interaction, "server show", {}, work)

    @server.command(name="channels")
    @app_commands.describe(channels="channel mentions, e.g. #bot #playground, or 'all'")
    async def channels(interaction: discord.Interaction, channels: str) -> None:
        """Where members may use /generate (default: every channel)."""
        ids = _mentioned_ids(channels)
        work = _setter(allowed_channels=ids)
        await admin.run_work(interaction, "server channels", {"channels": ids}, work)

    @server.command(name="blocklist")
    @app_commands.describe(terms="comma-separated words or phrases (re: for a pattern), or 'none'")
    async def blocklist(interaction: discord.Interaction, terms: str) -> None:
        """Terms moderation refuses here, on top of the bot's own list."""
        chosen = () if terms.strip().lower() == "none" else tuple(terms.split(","))
        work = _setter(blocklist=chosen)
        await admin.run_work(interaction, "server blocklist", {"terms": list(chosen)}, work)

    @server.command(name="cooldown")
    @app_commands.describe(seconds="between one member's requests; 0 turns it off")
    async def cooldown(
        interaction: discord.Interaction, seconds: app_commands.Range[float, 0, 3600]
    ) -> None:
        """How long a member waits between /generate, 🔁 and ⏩ here."""
        await admin.run_work(
            interaction, "server cooldown", {"seconds": seconds}, _setter(cooldown_s=seconds)
        )

    @server.command(name="caps")
    @app_commands.describe(
        max_new_tokens="the most tokens one answer may ask for", samples="the most samples"
    )
    async def caps(
        interaction: discord.Interaction,
        max_new_tokens: app_commands.Range[int, 1, 512] | None = None,
        samples: app_commands.Range[int, 1, 4] | None = None,
    ) -> None:
        """Limits on /generate here (leave one out to remove that cap)."""
        work = _setter(max_new_tokens_cap=max_new_tokens, samples_cap=samples)
        detail = {"max_new_tokens": max_new_tokens, "samples": samples}
        await admin.run_work(interaction, "server caps", detail, work)

    @server.command(name="defaults")
    @app_commands.describe(temperature="default temperature", max_new_tokens="default length")
    async def defaults(
        interaction: discord.Interaction,
        temperature: app_commands.Range[float, 0, 2] | None = None,
        max_new_tokens: app_commands.Range[int, 1, 512] | None = None,
    ) -> None:
        """Defaults for /generate options members leave out (none given: clear them)."""
        chosen = {"temperature": temperature, "max_new_tokens": max_new_tokens}
        values = {k: v for k, v in chosen.items() if v is not None}
        await admin.run_work(interaction, "server defaults", values, _setter(defaults=values))

    _add_training(server, admin)
    _add_template(server, admin)
    _add_delete_and_roles(server, admin)
    _add_reports(server, admin)


def _add_training(server: app_commands.Group, admin: AdminCommands) -> None:
    @server.command(name="training")
    @app_commands.describe(enabled="whether this server's ratings may become training data")
    async def training(interaction: discord.Interaction, enabled: bool) -> None:
        """Let this server's 👍/👎 feed the shared model's training (on by default)."""
        work = _setter(ratings_train=enabled)
        await admin.run_work(interaction, "server training", {"enabled": enabled}, work)


def _add_template(server: app_commands.Group, admin: AdminCommands) -> None:
    @server.command(name="template")
    @app_commands.describe(
        text="the prompt around members' text, with {prompt} once (\\n: a new line), or 'none'",
        channel="a channel mention: only there (default: the whole server)",
    )
    async def template(
        interaction: discord.Interaction, text: str, channel: str | None = None
    ) -> None:
        """GPT-2's "system prompt": wraps members' text in /generate and mentions here."""
        ids = _mentioned_ids(channel or "")
        place = ids[0] if ids else ""
        chosen = None if text.strip().lower() in ("none", "off", "-") else text

        async def work(service: AdminServices, actor: Actor) -> Reply:
            assert actor.server_id is not None
            current = await service.servers.get(PLATFORM, actor.server_id)
            templates = {**current.templates, place: chosen}
            record = await service.servers.update(
                actor.user_id, PLATFORM, actor.server_id, templates=templates
            )
            return Reply("Saved.\n" + admin_render.server_settings(record))

        detail = {"template": chosen, "channel": place or "server"}
        await admin.run_work(interaction, "server template", detail, work)


def _add_delete_and_roles(server: app_commands.Group, admin: AdminCommands) -> None:
    @server.command(name="delete")
    @app_commands.describe(generation="the number in the output's footer (#123)")
    async def delete(interaction: discord.Interaction, generation: SampleId) -> None:
        """Delete an output made in this server: its message, text, ratings, training use."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            assert actor.server_id is not None
            channel_id, message_id = await service.servers.delete_generation(
                actor.user_id, PLATFORM, actor.server_id, generation
            )
            if channel_id and message_id:
                channel = interaction.client.get_partial_messageable(int(channel_id))
                try:
                    await channel.get_partial_message(int(message_id)).delete()
                except discord.HTTPException as error:  # gone already, or no permission
                    log.info("could not delete message %s: %s", message_id, error)
            return Reply(f"Generation `#{generation}` is deleted (text, ratings, training use).")

        await admin.run_work(interaction, "server delete", {"generation": generation}, work)

    @server.command(name="roles")
    @app_commands.describe(roles="role mentions whose holders are this server's gpt2bot admins")
    async def roles(interaction: discord.Interaction, roles: str) -> None:
        """Roles (by id) that may change these settings, besides Manage Server."""
        ids = _mentioned_ids(roles)
        await admin.run_work(
            interaction, "server roles", {"roles": ids}, _setter(admin_role_ids=ids)
        )


def _add_reports(server: app_commands.Group, admin: AdminCommands) -> None:
    @server.command(name="reports")
    async def reports(interaction: discord.Interaction) -> None:
        """Outputs hidden after members' 🚩 reports: delete them or keep them."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            assert actor.server_id is not None
            rows = await service.servers.reported(PLATFORM, actor.server_id)
            return Reply(admin_render.reported(rows))

        await admin.run_work(interaction, "server reports", {}, work)

    @server.command(name="keep")
    @app_commands.describe(generation="a hidden output's number, from /admin server reports")
    async def keep(interaction: discord.Interaction, generation: SampleId) -> None:
        """Let a reported output stand: shown again to members, its reports cleared."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            assert actor.server_id is not None
            await service.servers.keep_reported(
                actor.user_id, PLATFORM, actor.server_id, generation
            )
            return Reply(f"Generation `#{generation}` is shown again; its reports are cleared.")

        await admin.run_work(interaction, "server keep", {"generation": generation}, work)
