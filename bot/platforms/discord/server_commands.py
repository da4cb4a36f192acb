"""`/admin server ...`: a server's own settings and outputs, for that server's admins (and the
bot's owners): where `/generate` may be used, the cooldown, caps, defaults and prompt template,
whether its ratings feed training, which roles are its admins, and deleting an output made in
it. The typed options become the shared commands' options (`bot/admin_commands/servers.py`),
authorized (scope "server") and audited like every `/admin` command.
"""

from __future__ import annotations

import logging
import re

import discord
from discord import app_commands

from bot.platforms.discord.admin_commands import AdminCommands, SampleId

log = logging.getLogger(__name__)


def _mentioned_ids(text: str) -> list[str]:
    """Channel or role ids from mentions (`<#1>`, `<@&2>`) or plain ids; "all" is none."""
    if text.strip().lower() in ("all", "any", "none", "-"):
        return []
    return re.findall(r"\d{5,25}", text)


def add_server_commands(parent: app_commands.Group, admin: AdminCommands) -> None:
    """`/admin server ...` under `parent`: this server's own settings, for its admins."""
    server = app_commands.Group(
        name="server", description="this server's own settings", parent=parent
    )

    @server.command(name="show")
    async def show(interaction: discord.Interaction) -> None:
        """This server's settings: channels, cooldown, caps, defaults, training."""
        await admin.run(interaction, "server show")

    @server.command(name="channels")
    @app_commands.describe(channels="channel mentions, e.g. #bot #playground, or 'all'")
    async def channels(interaction: discord.Interaction, channels: str) -> None:
        """Where members may use /generate (default: every channel)."""
        await admin.run(interaction, "server channels", {"channels": _mentioned_ids(channels)})

    @server.command(name="blocklist")
    @app_commands.describe(terms="comma-separated words or phrases (re: for a pattern), or 'none'")
    async def blocklist(interaction: discord.Interaction, terms: str) -> None:
        """Terms moderation refuses here, on top of the bot's own list."""
        chosen = () if terms.strip().lower() == "none" else tuple(terms.split(","))
        detail = {"terms": list(chosen)}
        await admin.run(interaction, "server blocklist", {"terms": chosen}, detail)

    @server.command(name="cooldown")
    @app_commands.describe(seconds="between one member's requests; 0 turns it off")
    async def cooldown(
        interaction: discord.Interaction, seconds: app_commands.Range[float, 0, 3600]
    ) -> None:
        """How long a member waits between /generate, 🔁 and ⏩ here."""
        await admin.run(interaction, "server cooldown", {"seconds": seconds})

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
        chosen = {"max_new_tokens": max_new_tokens, "samples": samples}
        await admin.run(interaction, "server caps", chosen)

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
        await admin.run(interaction, "server defaults", values)

    _add_training_and_template(server, admin)
    _add_outputs_and_roles(server, admin)


def _add_training_and_template(server: app_commands.Group, admin: AdminCommands) -> None:
    @server.command(name="training")
    @app_commands.describe(enabled="whether this server's ratings may become training data")
    async def training(interaction: discord.Interaction, enabled: bool) -> None:
        """Let this server's 👍/👎 feed the shared model's training (on by default)."""
        await admin.run(interaction, "server training", {"enabled": enabled})

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
        detail = {"template": chosen, "channel": place or "server"}
        await admin.run(interaction, "server template", {"text": chosen, "channel": place}, detail)


def _add_outputs_and_roles(server: app_commands.Group, admin: AdminCommands) -> None:
    @server.command(name="delete")
    @app_commands.describe(generation="the number in the output's footer (#123)")
    async def delete(interaction: discord.Interaction, generation: SampleId) -> None:
        """Delete an output made in this server: its message, text, ratings, training use."""

        async def unpublish(channel_id: str, message_id: str) -> None:
            channel = interaction.client.get_partial_messageable(int(channel_id))
            try:
                await channel.get_partial_message(int(message_id)).delete()
            except discord.HTTPException as error:  # gone already, or no permission
                log.info("could not delete message %s: %s", message_id, error)

        options = {"generation": generation}
        await admin.run(interaction, "server delete", options, unpublish=unpublish)

    @server.command(name="roles")
    @app_commands.describe(roles="role mentions whose holders are this server's gpt2bot admins")
    async def roles(interaction: discord.Interaction, roles: str) -> None:
        """Roles (by id) that may change these settings, besides Manage Server."""
        await admin.run(interaction, "server roles", {"roles": _mentioned_ids(roles)})

    @server.command(name="reports")
    async def reports(interaction: discord.Interaction) -> None:
        """Outputs hidden after members' 🚩 reports: delete them or keep them."""
        await admin.run(interaction, "server reports")

    @server.command(name="keep")
    @app_commands.describe(generation="a hidden output's number, from /admin server reports")
    async def keep(interaction: discord.Interaction, generation: SampleId) -> None:
        """Let a reported output stand: shown again to members, its reports cleared."""
        await admin.run(interaction, "server keep", {"generation": generation})
