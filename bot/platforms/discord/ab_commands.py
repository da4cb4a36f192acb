"""`/admin ab start|status|stop`: A/B experiments in Discord.

Starting and stopping change what every server is served, so they are for the bot's owners
(`AdminGate`, global scope); `status` is a read any admin may do. Every attempt is audited
like each `/admin` command. The shared commands (`bot/admin_commands/ab.py`) do the work;
answers are ephemeral and come with a chart of both arms (`DiscordRenderer.experiment`).
"""

from __future__ import annotations

import discord
from discord import app_commands

from bot.platforms.discord.admin_commands import AdminCommands

Share = app_commands.Range[float, 0.01, 0.99]
VersionName = app_commands.Range[str, 1, 64]


def add_ab_commands(parent: app_commands.Group, admin: AdminCommands) -> None:
    """`/admin ab ...` under `parent`."""
    ab = app_commands.Group(
        name="ab",
        description="A/B experiments: the active version against a candidate",
        parent=parent,
    )

    @ab.command(name="start")
    @app_commands.describe(
        version="a registered version other than the active one (see /admin model list)",
        share="the candidate's share of members, e.g. 0.3 (default: AB_SHARE)",
    )
    async def start(
        interaction: discord.Interaction, version: VersionName, share: Share | None = None
    ) -> None:
        """Serve a candidate to some members beside the active version; their ratings decide."""
        await admin.run(interaction, "ab start", {"version": version, "share": share})

    @ab.command(name="status")
    async def status(interaction: discord.Interaction) -> None:
        """The running (or last) experiment: both arms, the rule's decision, the review."""
        await admin.run(interaction, "ab status")

    @ab.command(name="stop")
    async def stop(interaction: discord.Interaction) -> None:
        """End the running experiment undecided: everyone gets the active version again."""
        await admin.run(interaction, "ab stop")
