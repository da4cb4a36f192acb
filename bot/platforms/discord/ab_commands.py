"""`/admin ab start|status|stop`: A/B experiments in Discord, and the experiment's part of
`/admin stats`.

Starting and stopping change what every server is served, so they are for the bot's owners
(`AdminGate`, global scope); `status` is a read any admin may do. Every attempt is audited
like each `/admin` command. Answers are ephemeral and come with a chart of both arms.
"""

from __future__ import annotations

import discord
from discord import app_commands

from admin.ab_report import ABReport, latest_report, report_of
from admin.auth import Actor
from admin.base import AdminServices
from bot.platforms import fleet_text
from bot.platforms.discord import admin_render
from bot.platforms.discord.admin_commands import AdminCommands, Reply, experiment_chart

NO_EXPERIMENT = "No A/B experiment has run yet: `/admin ab start version:NAME` starts one."
Share = app_commands.Range[float, 0.01, 0.99]
VersionName = app_commands.Range[str, 1, 64]


async def experiment_reply(report: ABReport, intro: str = "") -> Reply:
    """The experiment's text under `intro`, with the chart of both arms."""
    text = f"{intro}{admin_render.experiment(report)}"
    return Reply(text, files=(await experiment_chart(report),))


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

        async def work(service: AdminServices, actor: Actor) -> Reply:
            status = await service.experiments.start(actor.user_id, version, share)
            report = await report_of(status, service.reviews)
            followed = fleet_text.experiment_followed(await service.fleet.view())
            return await experiment_reply(report, f"Started. {followed}\n")

        await admin.run(interaction, "ab start", {"version": version, "share": share}, work)

    @ab.command(name="status")
    async def status(interaction: discord.Interaction) -> None:
        """The running (or last) experiment: both arms, the rule's decision, the review."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            report = await latest_report(service.experiments, service.reviews)
            return Reply(NO_EXPERIMENT) if report is None else await experiment_reply(report)

        await admin.run(interaction, "ab status", {}, work)

    @ab.command(name="stop")
    async def stop(interaction: discord.Interaction) -> None:
        """End the running experiment undecided: everyone gets the active version again."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            status = await service.experiments.stop(actor.user_id)
            report = await report_of(status, service.reviews)
            followed = fleet_text.experiment_followed(await service.fleet.view())
            return await experiment_reply(report, f"Stopped. {followed}\n")

        await admin.run(interaction, "ab stop", {}, work)
