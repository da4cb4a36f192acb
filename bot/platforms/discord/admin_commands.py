"""`/admin`: curate (and its review queue), retrain, model, stats; server settings, the blind
review of versions and A/B experiments have their own modules (`server_commands`,
`review_commands`, `ab_commands`).

Discord shows the group to members with the Manage Server permission (`default_permissions`;
a server can grant it to other roles in Server Settings → Integrations), and every invocation
is checked again here by `AdminGate`, which decides by scope (bot owners: everything; a
server's admins: their own server) and audits the attempt before anything happens. Answers are
ephemeral and split into pages within Discord's 2,000 characters. The work is done by the
admin services (`app.admin`).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands

from admin.ab_report import ABReport, ab_chart, latest_report
from admin.auth import Actor, AdminGate, NotAuthorized
from admin.base import AdminServices
from bot.params import InvalidRequest
from bot.platforms.discord import admin_render, render
from bot.platforms.discord.commands import PLATFORM
from bot.platforms.discord.jobs import describe_error
from storage import FINISHED_STATUSES, TrainingRunRecord

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 8 * 1024 * 1024  # curated-sample files larger than this are refused
PROGRESS_EDIT_INTERVAL_S = 5.0  # training progress: edit the answer at most this often
ListLimit = app_commands.Range[int, 1, 50]
SampleId = app_commands.Range[int, 1, None]


@dataclass(frozen=True)
class Reply:
    text: str
    files: tuple[discord.File, ...] = ()
    view: discord.ui.View | None = None  # buttons under the (first page of the) answer


Work = Callable[[AdminServices, Actor], Awaitable[Reply]]


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


class AdminCommands:
    """Authorizes, audits and runs one admin action per invocation."""

    def __init__(self, service: AdminServices, gate: AdminGate) -> None:
        self.service = service
        self.gate = gate
        self._progress_tasks: set[asyncio.Task[Any]] = set()

    async def run(
        self, interaction: discord.Interaction, action: str, detail: dict[str, Any], work: Work
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = actor_of(interaction)
        try:
            await self.gate.authorize(actor, action, detail)
        except NotAuthorized as refusal:
            log.warning("refused /admin %s for user %s", action, actor.user_id)
            await interaction.edit_original_response(content=str(refusal))
            return
        try:
            reply = await work(self.service, actor)
        except Exception as error:  # a refusal is shown as written; anything else: an incident
            reply = Reply(describe_error(error, f"/admin {action}"))
        await send_pages(interaction, reply.text, reply.files, reply.view)

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


async def experiment_chart(report: ABReport) -> discord.File:
    """The chart of both arms of the experiment, as an attachment."""
    chart = await ab_chart(report.status)
    return discord.File(io.BytesIO(chart), filename=admin_render.AB_CHART_FILENAME)


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

        async def work(service: AdminServices, actor: Actor) -> Reply:
            rows = await service.reports.stats()
            chart = await service.reports.stats_chart()
            text = admin_render.rating_stats(rows)
            files = [discord.File(io.BytesIO(chart), filename="ratings.png")]
            report = await latest_report(service.experiments, service.reviews)
            if report is not None:
                text += "\n\n" + admin_render.experiment(report)
                files.append(await experiment_chart(report))
            return Reply(text, tuple(files))

        await admin.run(interaction, "stats", {}, work)

    return group


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

        async def work(service: AdminServices, actor: Actor) -> Reply:
            if file is None and not text:
                return Reply("Give `text` or attach a `file` (.txt, one sample per line; .jsonl).")
            reports = []
            if text:
                reports.append(await service.curation.add(actor.user_id, [text]))
            if file is not None:
                if file.size > MAX_UPLOAD_BYTES:
                    return Reply(f"⚠️ {file.filename} is over {MAX_UPLOAD_BYTES // 2**20} MiB.")
                content = await file.read()
                reports.append(
                    await service.curation.add_file(actor.user_id, file.filename, content)
                )
            return Reply("Curated samples: " + "; ".join(r.summary() for r in reports) + ".")

        detail = {"text_chars": len(text or ""), "file": file.filename if file else None}
        await admin.run(interaction, "curate add", detail, work)

    @curate.command(name="list")
    async def list_(interaction: discord.Interaction, limit: ListLimit = 20) -> None:
        """The newest curated samples."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            return Reply(admin_render.curated(await service.curation.recent(limit)))

        await admin.run(interaction, "curate list", {"limit": limit}, work)

    @curate.command(name="remove")
    async def remove(interaction: discord.Interaction, sample_id: SampleId) -> None:
        """Stop using a curated sample for training."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            await service.curation.remove(actor.user_id, sample_id)
            return Reply(f"Sample `{sample_id}` will not be used for training any more.")

        await admin.run(interaction, "curate remove", {"sample_id": sample_id}, work)

    _add_queue(curate, admin)


def _add_queue(curate: app_commands.Group, admin: AdminCommands) -> None:
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

        async def work(service: AdminServices, actor: Actor) -> Reply:
            if approve is not None and reject is not None:
                raise InvalidRequest("Approve or reject one sample at a time.")
            if approve is None and reject is None:
                return Reply(admin_render.review_queue(await service.curation.pending(20)))
            sample_id, ok = (approve, True) if approve is not None else (reject, False)
            assert sample_id is not None
            done = await service.curation.review(actor.user_id, sample_id, ok)
            verb = "approved: it joins the next training run" if ok else "rejected for good"
            return Reply(f"Sample `{done.id}` {verb}.")

        detail = {"approve": approve, "reject": reject}
        await admin.run(interaction, "curate queue", detail, work)


def _add_retrain(parent: app_commands.Group, admin: AdminCommands) -> None:
    retrain = app_commands.Group(name="retrain", description="fine-tuning runs", parent=parent)

    @retrain.command(name="now")
    async def now(interaction: discord.Interaction) -> None:
        """Fine-tune on the curated samples now; this message shows the progress."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            run = await service.training.start(actor.user_id, admin.progress_reporter(interaction))
            return Reply(admin_render.training_run(run))

        await admin.run(interaction, "retrain now", {}, work)

    @retrain.command(name="schedule")
    @app_commands.describe(cron="five cron fields, e.g. '0 3 * * 0' (Sundays 03:00), or 'off'")
    async def schedule(interaction: discord.Interaction, cron: str) -> None:
        """Retrain automatically on a cron schedule, or turn it off."""
        value = None if cron.strip().lower() in ("off", "none", "") else cron.strip()

        async def work(service: AdminServices, actor: Actor) -> Reply:
            return Reply(
                admin_render.schedule(await service.training.schedule(actor.user_id, value))
            )

        await admin.run(interaction, "retrain schedule", {"cron": value}, work)

    @retrain.command(name="status")
    async def status(interaction: discord.Interaction) -> None:
        """The running or most recent training run."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            return Reply(admin_render.training_run(await service.training.status()))

        await admin.run(interaction, "retrain status", {}, work)

    @retrain.command(name="cancel")
    async def cancel(interaction: discord.Interaction) -> None:
        """Stop the running training run."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            stopped = await service.training.cancel(actor.user_id)
            return Reply("Training run cancelled." if stopped else "No training run is running.")

        await admin.run(interaction, "retrain cancel", {}, work)


def _add_model(parent: app_commands.Group, admin: AdminCommands) -> None:
    model = app_commands.Group(name="model", description="model versions", parent=parent)

    @model.command(name="list")
    async def list_(interaction: discord.Interaction) -> None:
        """All model versions and which one is serving."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            return Reply(admin_render.model_versions(await service.registry.versions()))

        await admin.run(interaction, "model list", {}, work)

    @model.command(name="use")
    @app_commands.describe(version="name from /admin model list", force="even if its loss is worse")
    async def use(interaction: discord.Interaction, version: str, force: bool = False) -> None:
        """Serve another model version (hot-swapped, no downtime)."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            record = await service.registry.use(actor.user_id, version, force)
            return Reply(admin_render.switched(record, await service.fleet.view()))

        await admin.run(interaction, "model use", {"version": version, "force": force}, work)

    @model.command(name="rollback")
    async def rollback(interaction: discord.Interaction) -> None:
        """Go back to the previously serving model version."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            record = await service.registry.rollback(actor.user_id)
            return Reply(admin_render.switched(record, await service.fleet.view()))

        await admin.run(interaction, "model rollback", {}, work)
