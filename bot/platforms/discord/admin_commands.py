"""`/admin`: curate, retrain, model, stats and server settings.

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
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands

from admin.auth import Actor, AdminGate, NotAuthorized
from admin.base import AdminServices, AlreadyRunning
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
    file: discord.File | None = None


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
    interaction: discord.Interaction, text: str, file: discord.File | None = None
) -> None:
    """An ephemeral answer of any length: the first page in the deferred response, the rest as
    ephemeral follow-ups, each within Discord's 2,000 characters."""
    pages = render.split_text(text) or [""]
    files = [file] if file else []
    await interaction.edit_original_response(content=pages[0], attachments=files)
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
        except (ValueError, LookupError, AlreadyRunning) as error:
            reply = Reply(f"⚠️ {error}")
        except Exception as error:
            reply = Reply(describe_error(error, f"/admin {action}"))
        await send_pages(interaction, reply.text, reply.file)

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
    _add_server(group, admin)

    @group.command(name="stats")
    async def stats(interaction: discord.Interaction) -> None:
        """Ratings per model version, with a chart."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            rows = await service.reports.stats()
            chart = await service.reports.stats_chart()
            file = discord.File(io.BytesIO(chart), filename="ratings.png")
            return Reply(admin_render.rating_stats(rows), file)

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
            return Reply(
                admin_render.switched(await service.registry.use(actor.user_id, version, force))
            )

        await admin.run(interaction, "model use", {"version": version, "force": force}, work)

    @model.command(name="rollback")
    async def rollback(interaction: discord.Interaction) -> None:
        """Go back to the previously serving model version."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            return Reply(admin_render.switched(await service.registry.rollback(actor.user_id)))

        await admin.run(interaction, "model rollback", {}, work)


def _mentioned_ids(text: str) -> list[str]:
    """Channel or role ids from mentions (`<#1>`, `<@&2>`) or plain ids; "all" is none."""
    if text.strip().lower() in ("all", "any", "none", "-"):
        return []
    return re.findall(r"\d{5,25}", text)


def _add_server(parent: app_commands.Group, admin: AdminCommands) -> None:
    server = app_commands.Group(
        name="server", description="this server's own settings", parent=parent
    )

    def setter(**changes: Any) -> Work:
        async def work(service: AdminServices, actor: Actor) -> Reply:
            assert actor.server_id is not None  # the group is guild-only
            record = await service.servers.update(
                actor.user_id, PLATFORM, actor.server_id, **changes
            )
            return Reply("Saved.\n" + admin_render.server_settings(record))

        return work

    @server.command(name="show")
    async def show(interaction: discord.Interaction) -> None:
        """This server's settings: channels, cooldown, caps, defaults, training."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            assert actor.server_id is not None
            record = await service.servers.get(PLATFORM, actor.server_id)
            return Reply(admin_render.server_settings(record))

        await admin.run(interaction, "server show", {}, work)

    @server.command(name="channels")
    @app_commands.describe(channels="channel mentions, e.g. #bot #playground, or 'all'")
    async def channels(interaction: discord.Interaction, channels: str) -> None:
        """Where members may use /generate (default: every channel)."""
        ids = _mentioned_ids(channels)
        work = setter(allowed_channels=ids)
        await admin.run(interaction, "server channels", {"channels": ids}, work)

    @server.command(name="cooldown")
    @app_commands.describe(seconds="between one member's requests; 0 turns it off")
    async def cooldown(
        interaction: discord.Interaction, seconds: app_commands.Range[float, 0, 3600]
    ) -> None:
        """How long a member waits between /generate, 🔁 and ⏩ here."""
        await admin.run(
            interaction, "server cooldown", {"seconds": seconds}, setter(cooldown_s=seconds)
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
        work = setter(max_new_tokens_cap=max_new_tokens, samples_cap=samples)
        detail = {"max_new_tokens": max_new_tokens, "samples": samples}
        await admin.run(interaction, "server caps", detail, work)

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
        await admin.run(interaction, "server defaults", values, setter(defaults=values))

    @server.command(name="training")
    @app_commands.describe(enabled="whether this server's ratings may become training data")
    async def training(interaction: discord.Interaction, enabled: bool) -> None:
        """Let this server's 👍/👎 feed the shared model's training (on by default)."""
        work = setter(ratings_train=enabled)
        await admin.run(interaction, "server training", {"enabled": enabled}, work)

    @server.command(name="roles")
    @app_commands.describe(roles="role mentions whose holders are this server's gpt2bot admins")
    async def roles(interaction: discord.Interaction, roles: str) -> None:
        """Roles (by id) that may change these settings, besides Manage Server."""
        ids = _mentioned_ids(roles)
        await admin.run(interaction, "server roles", {"roles": ids}, setter(admin_role_ids=ids))
