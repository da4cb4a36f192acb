"""`/admin`: curate (and its review queue), retrain, model, stats; server settings, the blind
review of versions and A/B experiments have their own modules (`server_commands`,
`review_commands`, `ab_commands`).

Each slash command is thin: its typed options become the options of the shared command
(`bot/admin_commands/`), which authorizes and audits the attempt (`AdminGate`: bot owners
everything, a server's admins their own server), does the work and hands the result to
`DiscordRenderer` (`admin_render.py`) for Discord's wording, charts and buttons.

Discord shows the group to members with the Manage Server permission (`default_permissions`;
a server can grant it to other roles in Server Settings → Integrations), and every invocation
is checked again by the gate before anything happens. Answers are ephemeral and split into
pages within Discord's 2,000 characters.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from admin.auth import Actor
from bot.admin_commands import AdminCommands as SharedCommands
from bot.admin_commands import AdminReply, Upload
from bot.admin_commands.context import Unpublish
from bot.platforms.discord import admin_render, render
from bot.platforms.discord.commands import PLATFORM
from storage import FINISHED_STATUSES, TrainingRunRecord

if TYPE_CHECKING:
    from bot.admin_commands.commands import AdminHost

log = logging.getLogger(__name__)

PROGRESS_EDIT_INTERVAL_S = 5.0  # training progress: edit the answer at most this often
ListLimit = app_commands.Range[int, 1, 50]
SampleId = app_commands.Range[int, 1, None]
ViewOf = Callable[[AdminReply], discord.ui.View | None]  # the buttons under a reply, if any


def actor_of(interaction: discord.Interaction) -> Actor:
    user = interaction.user
    in_server = interaction.guild_id is not None
    roles = tuple(str(role.id) for role in user.roles) if isinstance(user, discord.Member) else ()
    return Actor(
        platform=PLATFORM,
        user_id=str(user.id),
        server_id=str(interaction.guild_id) if in_server else None,
        server_admin=in_server
        and (interaction.permissions.manage_guild or interaction.permissions.administrator),
        role_ids=roles,
    )


async def send_pages(
    interaction: discord.Interaction,
    text: str,
    files: tuple[discord.File, ...] = (),
    view: discord.ui.View | None = None,
) -> None:
    """An ephemeral answer of any length: the first page in the deferred response, the rest as
    ephemeral follow-ups, each within Discord's 2,000 characters."""
    pages = render.split_text(text) or [""]
    if view is None:
        await interaction.edit_original_response(content=pages[0], attachments=list(files))
    else:
        await interaction.edit_original_response(
            content=pages[0], attachments=list(files), view=view
        )
    for page in pages[1:]:
        await interaction.followup.send(page, ephemeral=True)


def attachments(reply: AdminReply) -> tuple[discord.File, ...]:
    """The reply's charts as files attached to the answer."""
    return tuple(discord.File(io.BytesIO(c.png), filename=c.filename) for c in reply.charts)


class AdminCommands:
    """Runs the shared admin commands for Discord's slash commands and buttons."""

    def __init__(self, app: AdminHost) -> None:
        self.commands = SharedCommands(app, renderer=admin_render.DiscordRenderer())
        self._progress_tasks: set[asyncio.Task[Any]] = set()

    async def run(
        self,
        interaction: discord.Interaction,
        words: str,
        options: Mapping[str, Any] | None = None,
        detail: Mapping[str, Any] | None = None,
        view_of: ViewOf | None = None,
        unpublish: Unpublish | None = None,
    ) -> None:
        """Defer, run the shared command `words` with the typed `options` (audited with
        `detail`, default the options), and show its answer; `view_of` adds its buttons,
        `unpublish` deletes an output's message."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        reply = await self.commands.call(
            actor_of(interaction),
            words,
            options,
            detail=detail,
            progress=self.progress_reporter(interaction),
            unpublish=unpublish,
        )
        view = view_of(reply) if view_of is not None else None
        await send_pages(interaction, reply.text, attachments(reply), view)

    def progress_reporter(
        self, interaction: discord.Interaction
    ) -> Callable[[TrainingRunRecord], None]:
        """A callback that shows a training run's progress in the admin's answer; once the
        interaction's 15-minute token has expired, in a normal message of the channel."""
        last = [0.0]
        posted: list[discord.Message] = []  # the channel message, once there is one

        def report(run: TrainingRunRecord) -> None:
            final = run.status in FINISHED_STATUSES
            now = time.monotonic()
            if not final and now - last[0] < PROGRESS_EDIT_INTERVAL_S:
                return
            last[0] = now
            text = admin_render.training_run(run)
            task = asyncio.ensure_future(self._show(interaction, text, posted))
            self._progress_tasks.add(task)
            task.add_done_callback(self._progress_tasks.discard)

        return report

    async def _show(
        self, interaction: discord.Interaction, text: str, posted: list[discord.Message]
    ) -> None:
        try:
            if not posted:
                await interaction.edit_original_response(content=text)
                return
        except discord.HTTPException as error:  # e.g. the 15-minute interaction token expired
            log.info("training progress for %s moves to the channel: %s", interaction.user, error)
        text = f"<@{interaction.user.id}> {text}"  # shown, not pinged (no mentions allowed)
        try:
            if posted:
                await posted[0].edit(content=text)
                return
            channel = interaction.client.get_partial_messageable(
                interaction.channel_id or 0, guild_id=interaction.guild_id
            )
            posted.append(await channel.send(text, allowed_mentions=discord.AllowedMentions.none()))
        except discord.HTTPException as error:
            log.warning("could not post training progress in the channel: %s", error)


def build_admin_group(admin: AdminCommands) -> app_commands.Group:
    """The `/admin` command group bound to `admin`."""
    group = app_commands.Group(
        name="admin",
        description="gpt2bot administration (admins only)",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
    )
    _add_curate(group, admin)
    _add_retrain(group, admin)
    _add_model(group, admin)

    @group.command(name="stats")
    async def stats(interaction: discord.Interaction) -> None:
        """Ratings per model version, and the running (or last) A/B experiment, with charts."""
        await admin.run(interaction, "stats")

    return group


def _upload(file: discord.Attachment) -> Upload:
    return Upload(file.filename, file.size, file.read)


def _add_curate(parent: app_commands.Group, admin: AdminCommands) -> None:
    curate = app_commands.Group(name="curate", description="training samples", parent=parent)

    @curate.command(name="add")
    @app_commands.describe(text="one training sample", file=".txt (one per line) or .jsonl")
    async def add(
        interaction: discord.Interaction,
        text: str | None = None,
        file: discord.Attachment | None = None,
    ) -> None:
        """Add a training sample, or a file of them."""
        options = {"text": text, "file": _upload(file) if file is not None else None}
        detail = {"text_chars": len(text or ""), "file": file.filename if file else None}
        await admin.run(interaction, "curate add", options, detail)

    @curate.command(name="list")
    async def list_(interaction: discord.Interaction, limit: ListLimit = 20) -> None:
        """The newest curated samples."""
        await admin.run(interaction, "curate list", {"limit": limit})

    @curate.command(name="remove")
    async def remove(interaction: discord.Interaction, sample_id: SampleId) -> None:
        """Stop using a curated sample for training."""
        await admin.run(interaction, "curate remove", {"sample_id": sample_id})

    @curate.command(name="queue")
    @app_commands.describe(
        approve="id of a queued sample to train on", reject="id of a queued sample to drop"
    )
    async def queue(
        interaction: discord.Interaction,
        approve: SampleId | None = None,
        reject: SampleId | None = None,
    ) -> None:
        """Rating-derived samples waiting for review; approve or reject one by its id."""
        await admin.run(interaction, "curate queue", {"approve": approve, "reject": reject})


def _add_retrain(parent: app_commands.Group, admin: AdminCommands) -> None:
    retrain = app_commands.Group(name="retrain", description="fine-tuning runs", parent=parent)

    @retrain.command(name="now")
    async def now(interaction: discord.Interaction) -> None:
        """Fine-tune on the curated samples now; this message shows the progress."""
        await admin.run(interaction, "retrain now")

    @retrain.command(name="schedule")
    @app_commands.describe(cron="five cron fields, e.g. '0 3 * * 0' (Sundays 03:00), or 'off'")
    async def schedule(interaction: discord.Interaction, cron: str) -> None:
        """Retrain automatically on a cron schedule, or turn it off."""
        value = None if cron.strip().lower() in ("off", "none", "") else cron.strip()
        await admin.run(interaction, "retrain schedule", {"cron": value})

    @retrain.command(name="status")
    async def status(interaction: discord.Interaction) -> None:
        """The running or most recent training run."""
        await admin.run(interaction, "retrain status")

    @retrain.command(name="cancel")
    async def cancel(interaction: discord.Interaction) -> None:
        """Stop the running training run."""
        await admin.run(interaction, "retrain cancel")


def _add_model(parent: app_commands.Group, admin: AdminCommands) -> None:
    model = app_commands.Group(name="model", description="model versions", parent=parent)

    @model.command(name="list")
    async def list_(interaction: discord.Interaction) -> None:
        """All model versions and which one is serving."""
        await admin.run(interaction, "model list")

    @model.command(name="use")
    @app_commands.describe(version="name from /admin model list", force="even if its loss is worse")
    async def use(interaction: discord.Interaction, version: str, force: bool = False) -> None:
        """Serve another model version (hot-swapped, no downtime)."""
        await admin.run(interaction, "model use", {"version": version, "force": force})

    @model.command(name="rollback")
    async def rollback(interaction: discord.Interaction) -> None:
        """Go back to the previously serving model version."""
        await admin.run(interaction, "model rollback")
