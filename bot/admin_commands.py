"""The `/admin` command set, described once for every platform that takes typed commands.

A platform turns a typed line (`model list`, `curate add Some text`) into
`AdminCommands.run(actor, text)` and renders the `AdminReply` it gets back: text in the
platform's markup (its `Surface` says how to write code spans and how to escape), and chart
images to post. Authorization and the audit log come first (`admin.auth.AdminGate`), so a
platform never calls an admin service itself; refusals and mistakes come back as sentences.
A new platform offers `/admin` by rendering replies, not by copying another platform's handlers.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from admin.auth import Actor, AdminGate, NotAuthorized
from admin.base import AdminError, AdminServices
from bot.params import InvalidRequest
from bot.platforms import fleet_text
from bot.platforms.server_text import settings_facts
from storage import ACTIVE_STATUSES, FINISHED_STATUSES, ModelVersionRecord, TrainingRunRecord

log = logging.getLogger(__name__)

LIST_LIMIT = 20
PREVIEW_CHARS = 80  # of a curated text in `curate list`

Tell = Callable[[str], Coroutine[Any, Any, None]]  # a later message to the admin who asked


def _plain(text: str) -> str:
    return text


def _backticks(text: str) -> str:
    return f"`{text}`"


@dataclass(frozen=True)
class Surface:
    """How a platform writes what the command set says."""

    command: str = "/admin"  # what admins type before the command words
    server_noun: str = "server"  # what the platform calls a server ("workspace" on Slack)
    code: Callable[[str], str] = _backticks  # a code span in the platform's markup
    escape: Callable[[str], str] = _plain  # user text made safe for the platform's markup
    force: str = "To promote it anyway, add `force`: `model use VERSION force`."
    audit_prefix: str = ""  # before the words in the audit log's action ("slack " on Slack)


@dataclass(frozen=True)
class Chart:
    """A PNG image to post with the reply."""

    filename: str
    title: str
    png: bytes


@dataclass(frozen=True)
class AdminReply:
    """What an admin command answers: text for the admin who asked, and charts to post."""

    text: str
    charts: tuple[Chart, ...] = ()


class AdminHost(Protocol):
    """What the command set needs of the app: the services and the gate in front of them."""

    admin: AdminServices
    gate: AdminGate


@dataclass
class Context:
    """One admin command: who asked, its words after the command name, how to answer later."""

    services: AdminServices
    actor: Actor
    surface: Surface
    args: list[str]
    rest: str  # the text after the command words, line breaks kept
    tell: Tell | None
    spawn: Callable[[Coroutine[Any, Any, None]], None]

    @property
    def server_id(self) -> str:
        if self.actor.server_id is None:
            raise InvalidRequest(f"Use this in a {self.surface.server_noun}'s channel.")
        return self.actor.server_id


Handler = Callable[[Context], Awaitable["AdminReply | str"]]


@dataclass(frozen=True)
class Command:
    """One admin command: its words, its arguments as help shows them, and what it does."""

    words: tuple[str, ...]
    usage: str
    help: str
    handler: Handler = field(repr=False)


class AdminCommands:
    """Runs the admin command set for one platform (`surface`)."""

    def __init__(self, app: AdminHost, surface: Surface | None = None) -> None:
        self._app = app
        self.surface = surface or Surface()
        self._tasks: set[asyncio.Task[None]] = set()

    def usage(self) -> str:
        """The help text: one line per command."""
        code = self.surface.code
        lines = [f"{code(f'{self.surface.command} {c.usage}')}: {c.help}" for c in COMMANDS]
        return "Admin commands:\n" + "\n".join(lines)

    async def run(self, actor: Actor, text: str, tell: Tell | None = None) -> AdminReply:
        """Authorize and audit `text` for `actor`, then run it; never raises for what a user
        typed or a use-case refused. `tell` reports later news (a training run that ended)."""
        words = text.split()
        action = " ".join(words[:2]) if words else "help"
        try:
            action_name = f"{self.surface.audit_prefix}{action}"
            await self._app.gate.authorize(actor, action_name, {"text": text})
        except NotAuthorized as refusal:
            return AdminReply(str(refusal))
        command = _lookup(words)
        if command is None:
            unknown = f"I don't know {self.surface.code(self.surface.escape(action))}.\n"
            return AdminReply(self.usage() if action == "help" else unknown + self.usage())
        size = len(command.words)
        rest = text.strip().split(maxsplit=size)[size:]
        context = Context(
            self._app.admin,
            actor,
            self.surface,
            words[size:],
            rest[0] if rest else "",
            tell,
            self._spawn,
        )
        return await self._answer(command, context)

    async def _answer(self, command: Command, context: Context) -> AdminReply:
        try:
            reply = await command.handler(context)
        except AdminError as error:  # a refusal written for the admin who asked
            return AdminReply(error.sentence(self.surface.force))
        except InvalidRequest as error:  # the command's own words could not be read
            return AdminReply(str(error))
        except Exception as error:
            return AdminReply(incident_sentence(error))
        return AdminReply(reply) if isinstance(reply, str) else reply

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)


def incident_sentence(error: BaseException) -> str:
    """Log an unexpected error with an id and return the sentence users see instead."""
    incident = uuid.uuid4().hex[:8]
    log.error("admin command failed (incident %s)", incident, exc_info=error)
    return f"Something went wrong on our side (incident {incident}). Please try again later."


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("could not report a training run", exc_info=task.exception())


def _lookup(words: list[str]) -> Command | None:
    for size in (2, 1):
        for command in COMMANDS:
            if command.words == tuple(words[:size]) and len(words) >= size:
                return command
    return None


def _int_arg(args: list[str], name: str, default: int | None = None) -> int:
    if not args and default is not None:
        return default
    if len(args) != 1 or not args[0].lstrip("#").isdigit():
        raise InvalidRequest(f"{name} must be a number, e.g. 12.")
    return int(args[0].lstrip("#"))


async def _curate_add(ctx: Context) -> str:
    text = ctx.rest.strip()
    if not text:
        example = ctx.surface.code(f"{ctx.surface.command} curate add Some good example text")
        return f"Give the text to add: {example}."
    report = await ctx.services.curation.add(ctx.actor.user_id, [text])
    return f"Curated data: {report.summary()}."


async def _curate_list(ctx: Context) -> str:
    items = await ctx.services.curation.recent(_int_arg(ctx.args, "N", default=LIST_LIMIT))
    if not items:
        return "No curated samples yet: add one with `curate add TEXT` or rate answers 👍."
    code, escape = ctx.surface.code, ctx.surface.escape
    return "\n".join(
        f"{code(f'#{i.id}')} [{i.source}] by {i.added_by}: {escape(i.text[:PREVIEW_CHARS])}"
        for i in items
    )


async def _curate_remove(ctx: Context) -> str:
    sample_id = _int_arg(ctx.args, "ID")
    await ctx.services.curation.remove(ctx.actor.user_id, sample_id)
    return f"Removed curated sample #{sample_id}."


async def _retrain_now(ctx: Context) -> str:
    tell = ctx.tell

    def progress(info: TrainingRunRecord) -> None:
        if tell is not None and info.status in FINISHED_STATUSES:
            ctx.spawn(tell(run_text(info, ctx.surface)))

    run = await ctx.services.training.start(ctx.actor.user_id, progress)
    later = "; I'll tell you when it ends" if tell is not None else ""
    return f"Training run #{run.id} started on {run.dataset_size} samples{later}."


async def _retrain_status(ctx: Context) -> str:
    run = await ctx.services.training.status()
    if run is None:
        return "No training run yet: start one with `retrain now`."
    return run_text(run, ctx.surface)


async def _retrain_cancel(ctx: Context) -> str:
    cancelled = await ctx.services.training.cancel(ctx.actor.user_id)
    return "Cancelled the running training run." if cancelled else "No training run is running."


async def _retrain_schedule(ctx: Context) -> str:
    if not ctx.args:
        example = ctx.surface.code(f"{ctx.surface.command} retrain schedule 0 3 * * 0")
        return f"Give a cron expression or `off`: {example}."
    cron = None if ctx.args == ["off"] else " ".join(ctx.args)
    upcoming = await ctx.services.training.schedule(ctx.actor.user_id, cron)
    if cron is None:
        return "Scheduled retraining is off."
    times = ", ".join(t.strftime("%Y-%m-%d %H:%M %Z").strip() for t in upcoming)
    return f"Retraining on {ctx.surface.code(ctx.surface.escape(cron))}; next runs: {times}."


async def _model_list(ctx: Context) -> str:
    rows = await ctx.services.registry.versions()
    return "\n".join(version_line(r, ctx.surface) for r in rows) or "No model versions yet."


async def _model_use(ctx: Context) -> str:
    if not ctx.args:
        return f"Name the version: {ctx.surface.code('model use VERSION [force]')}."
    force = ctx.args[1:] == ["force"]
    record = await ctx.services.registry.use(ctx.actor.user_id, ctx.args[0], force=force)
    return fleet_text.switched(record.name, await ctx.services.fleet.view(), ctx.surface.code)


async def _model_rollback(ctx: Context) -> str:
    record = await ctx.services.registry.rollback(ctx.actor.user_id)
    view = await ctx.services.fleet.view()
    return "Rolled back. " + fleet_text.switched(record.name, view, ctx.surface.code)


async def _stats(ctx: Context) -> AdminReply:
    rows = await ctx.services.reports.stats()
    if not rows:
        return AdminReply("No generations yet, so no ratings to compare.")
    code = ctx.surface.code
    lines = [code("version · generations · ratings · mean · 👍 share · raters")] + [
        f"{code(r.model_version)} · {r.generations} · {r.ratings} · {r.mean_score:+.2f} · "
        f"{r.positive_share:.0%} · {r.raters}"
        for r in rows
    ]
    chart = Chart("ratings.png", "Ratings per version", await ctx.services.reports.stats_chart())
    return AdminReply("\n".join(lines), (chart,))


async def _server_show(ctx: Context) -> str:
    record = await ctx.services.servers.get(ctx.actor.platform, ctx.server_id)
    return _server_text(ctx, record)


async def _server_cooldown(ctx: Context) -> str:
    try:
        seconds = float(ctx.args[0]) if len(ctx.args) == 1 else None
    except ValueError:
        seconds = None
    if seconds is None:
        example = ctx.surface.code(f"{ctx.surface.command} server cooldown 10")
        return f"Give the seconds: {example} (0 turns it off)."
    return await _server_set(ctx, cooldown_s=seconds)


async def _server_training(ctx: Context) -> str:
    if ctx.args not in (["on"], ["off"]):
        return f"Say {ctx.surface.code(f'{ctx.surface.command} server training on')} or `off`."
    return await _server_set(ctx, ratings_train=ctx.args == ["on"])


async def _server_set(ctx: Context, **changes: Any) -> str:
    record = await ctx.services.servers.update(
        ctx.actor.user_id, ctx.actor.platform, ctx.server_id, **changes
    )
    return "Saved.\n" + _server_text(ctx, record)


def _server_text(ctx: Context, record: Any) -> str:
    facts = "; ".join(f"{label}: {value}" for label, value in settings_facts(record, roles=False))
    return f"This {ctx.surface.server_noun}: {facts}."


def run_text(run: TrainingRunRecord, surface: Surface) -> str:
    """A training run in one sentence: progress while it runs, its outcome once it ended."""
    text = f"Training run #{run.id} ({run.trigger}, by {run.requested_by}): {run.status}"
    if run.status in ACTIVE_STATUSES:
        eta = f", about {run.eta_s:.0f}s left" if run.eta_s is not None else ""
        return f"{text}, {run.progress:.0%}{eta}."
    if run.error:
        return f"{text}: {surface.escape(run.error)}."
    loss_before, loss_after = run.eval_before.get("eval_loss"), run.eval_after.get("eval_loss")
    if run.model_version:
        outcome = "promoted" if run.promoted else "kept as candidate"
        text += f"; version {run.model_version} {outcome}"
    if isinstance(loss_before, float) and isinstance(loss_after, float):
        text += f"; held-out loss {loss_before:.3f} → {loss_after:.3f}"
    return text + "."


def version_line(record: ModelVersionRecord, surface: Surface) -> str:
    """One model version: ▶ marks the active one."""
    loss = record.metrics.get("eval_loss")
    extra = f" · eval_loss {loss:.3f}" if isinstance(loss, float) else ""
    marker = "▶" if record.status == "active" else "·"
    parent = record.parent or "-"
    return f"{marker} {surface.code(record.name)} {record.status} · parent {parent}{extra}"


COMMANDS: tuple[Command, ...] = (
    Command(("curate", "add"), "curate add TEXT", "add a training text", _curate_add),
    Command(("curate", "list"), "curate list [N]", "the latest curated texts", _curate_list),
    Command(("curate", "remove"), "curate remove ID", "drop a curated text", _curate_remove),
    Command(("retrain", "now"), "retrain now", "fine-tune on the curated data", _retrain_now),
    Command(("retrain", "status"), "retrain status", "the latest run", _retrain_status),
    Command(("retrain", "cancel"), "retrain cancel", "stop the running run", _retrain_cancel),
    Command(
        ("retrain", "schedule"),
        "retrain schedule CRON|off",
        "retrain on a cron schedule",
        _retrain_schedule,
    ),
    Command(("model", "list"), "model list", "the model versions", _model_list),
    Command(("model", "use"), "model use VERSION [force]", "serve another version", _model_use),
    Command(("model", "rollback"), "model rollback", "serve the previous version", _model_rollback),
    Command(("stats",), "stats", "ratings per model version, with a chart", _stats),
    Command(("server", "show"), "server show", "this server's settings", _server_show),
    Command(
        ("server", "cooldown"),
        "server cooldown N",
        "seconds between a member's requests",
        _server_cooldown,
    ),
    Command(
        ("server", "training"),
        "server training on|off",
        "whether ratings here feed training",
        _server_training,
    ),
)
