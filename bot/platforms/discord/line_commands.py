"""`/admin line show|enable|disable|share|add|queue|retrain|schedule|use|rollback|ab|review`: a
server's own model line in Discord, always the server asked in.

`enable`, `disable` and `share` are for the bot's owners (`AdminGate`, global scope); once the
owners enabled a server's line, its admins may add texts to it, review its rated outputs,
retrain it (now or on a schedule of its own), switch or roll back its version, and run an A/B
experiment inside it (`Scope.LINE`; Discord nests two levels at most, so `line ab` takes its
action as an option); `show` is a read any admin
may do. Every attempt is audited; the shared commands (`bot/admin_commands/lines.py`) do the work.
"""

from __future__ import annotations

import discord
from discord import app_commands

from bot.platforms.discord.ab_commands import Share
from bot.platforms.discord.admin_commands import AdminCommands, SampleId
from bot.platforms.discord.review_commands import ReviewCommands

VersionName = app_commands.Range[str, 1, 64]
Text = app_commands.Range[str, 1, 4000]


def add_line_commands(
    parent: app_commands.Group, admin: AdminCommands, review: ReviewCommands
) -> None:
    """`/admin line ...` under `parent`; `review`: the review buttons (for `line review`)."""
    line = app_commands.Group(
        name="line", description="this server's own model line", parent=parent
    )

    @line.command(name="show")
    async def show(interaction: discord.Interaction) -> None:
        """Whether this server has its own line, what its members get, and its versions."""
        await admin.run(interaction, "line show")

    @line.command(name="enable")
    async def enable(interaction: discord.Interaction) -> None:
        """Bot owners: give this server a model line of its own."""
        await admin.run(interaction, "line enable")

    @line.command(name="disable")
    async def disable(interaction: discord.Interaction) -> None:
        """Bot owners: serve this server the shared version again (its versions are kept)."""
        await admin.run(interaction, "line disable")

    @line.command(name="share")
    @app_commands.describe(enabled="whether this server's texts and ratings train it too")
    async def share(interaction: discord.Interaction, enabled: bool) -> None:
        """Bot owners: let this server's data also train the shared model, or not."""
        await admin.run(interaction, "line share", {"enabled": enabled})

    @line.command(name="add")
    @app_commands.describe(text="a training text for this server's line only")
    async def add(interaction: discord.Interaction, text: Text) -> None:
        """Add a curated text to this server's line only."""
        await admin.run(interaction, "line add", {"text": text})

    @line.command(name="queue")
    @app_commands.describe(
        approve="a queued sample's id to add to this line's data",
        reject="a queued sample's id to keep out for good",
    )
    async def queue(
        interaction: discord.Interaction,
        approve: SampleId | None = None,
        reject: SampleId | None = None,
    ) -> None:
        """This server's rated outputs waiting for review; approve or reject one by its id."""
        await admin.run(interaction, "line queue", {"approve": approve, "reject": reject})

    @line.command(name="retrain")
    async def retrain(interaction: discord.Interaction) -> None:
        """Train this server's adapter on its own texts and ratings; shows the progress."""
        await admin.run(interaction, "line retrain")

    @line.command(name="use")
    @app_commands.describe(version="one of this line's versions (/admin line show)")
    async def use(
        interaction: discord.Interaction, version: VersionName, force: bool = False
    ) -> None:
        """Serve this server another version of its line."""
        await admin.run(interaction, "line use", {"version": version, "force": force})

    @line.command(name="rollback")
    async def rollback(interaction: discord.Interaction) -> None:
        """Go back to this line's previous version."""
        await admin.run(interaction, "line rollback")

    _add_schedule_and_comparisons(line, admin, review)


def _add_schedule_and_comparisons(
    line: app_commands.Group, admin: AdminCommands, review: ReviewCommands
) -> None:
    """`/admin line schedule|ab|review` under `line`."""

    @line.command(name="schedule")
    @app_commands.describe(cron="five cron fields, e.g. '0 3 * * 0' (Sundays 03:00), or 'off'")
    async def schedule(interaction: discord.Interaction, cron: str) -> None:
        """Retrain this line on a schedule of its own (only when it has new data), or stop."""
        value = None if cron.strip().lower() in ("off", "none", "") else cron.strip()
        await admin.run(interaction, "line schedule", {"cron": value})

    @line.command(name="ab")
    @app_commands.describe(
        action="start, status or stop",
        version="start: one of this line's versions other than its active one",
        share="start: the candidate's share of this server's members (default: AB_SHARE)",
    )
    @app_commands.choices(
        action=[app_commands.Choice(name=name, value=name) for name in ("start", "status", "stop")]
    )
    async def ab(
        interaction: discord.Interaction,
        action: str = "status",
        version: VersionName | None = None,
        share: Share | None = None,
    ) -> None:
        """A/B inside this server's line: its version against a candidate, on its members."""
        options = {"action": action, "version": version, "share": share}
        await admin.run(interaction, "line ab", options)

    @line.command(name="review")
    @app_commands.describe(
        action="next: a blind pair of this line's versions; stats: its win rates",
        version_a="next: one of this line's versions (default: its active one)",
        version_b="next: another (default: its newest other version)",
    )
    @app_commands.choices(
        action=[app_commands.Choice(name=name, value=name) for name in ("next", "stats")]
    )
    async def review_(
        interaction: discord.Interaction,
        action: str = "next",
        version_a: VersionName | None = None,
        version_b: VersionName | None = None,
    ) -> None:
        """Blind review of this line's versions on this server's prompts: pick the better."""
        options = {"action": action, "version_a": version_a, "version_b": version_b}
        await admin.run(interaction, "line review", options, view_of=review.line_view_of)
