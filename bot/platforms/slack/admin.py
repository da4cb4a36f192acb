"""`/gpt2bot-admin ...`: the admin services (`app.admin`, see `admin/base.py`) from Slack.

Every attempt is authorized and audited by `admin.auth.AdminGate` before anything happens:
the Slack user ids in `ADMIN_USER_IDS` are the bot's owners (everything); the workspace's
admins and owners (`users.info`) are server admins of their workspace (`server ...`). Answers
are ephemeral (only the admin sees them), except the stats charts (ratings per version, the
A/B experiment's arms), which are uploaded to the channel.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from admin.ab_report import ab_chart
from admin.auth import Actor, NotAuthorized
from admin.base import AdminError, AdminServices
from bot.params import InvalidRequest
from bot.platforms import fleet_text
from bot.platforms.server_text import settings_facts
from bot.platforms.slack import ab, review
from bot.platforms.slack.chat import PLATFORM, incident_sentence
from bot.platforms.slack.text import escape, slack_error, unescape
from storage import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    ModelVersionRecord,
    ServerSettingsRecord,
    TrainingRunRecord,
)

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

COMMAND = "/gpt2bot-admin"
# after a refusal an admin may override (the promotion gate): how to, on Slack
HOW_TO_FORCE = f"To promote it anyway, add `force`: `{COMMAND} model use VERSION force`."
LIST_LIMIT = 20
USAGE = f"""Admin commands:
`{COMMAND} curate add TEXT` · `curate list [N]` · `curate remove ID`
`{COMMAND} retrain now` · `retrain status` · `retrain cancel` · `retrain schedule CRON|off`
`{COMMAND} model list` · `model use VERSION [force]` · `model rollback`
`{COMMAND} stats` · `server show` · `server channels #a #b|all` · `server cooldown N`
`{COMMAND} server caps max_new_tokens=N samples=N` · `server training on|off`
`{COMMAND} server template [#channel] TEXT with {{prompt}}|none`
{review.USAGE}
{ab.USAGE}"""

Handler = Callable[["AdminContext", list[str]], Awaitable[str]]


class AdminContext:
    """One admin command: who asked, where, and how to answer later."""

    def __init__(
        self,
        service: AdminServices,
        actor: Actor,
        client: AsyncWebClient,
        channel: str,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        rest: str = "",
    ) -> None:
        self.service, self.actor, self.client, self.channel = service, actor, client, channel
        self.rest = rest  # the text after the command words, line breaks kept
        self.spawn = spawn  # runs a follow-up (e.g. "training finished") in the background

    @property
    def server_id(self) -> str:
        """The workspace asked in (server commands need one)."""
        if self.actor.server_id is None:
            raise InvalidRequest("Use this in a workspace channel.")
        return self.actor.server_id

    async def tell(self, text: str) -> None:
        """An ephemeral message to the admin, usable after the response URL has expired."""
        await self.client.chat_postEphemeral(
            channel=self.channel, user=self.actor.user_id, text=text
        )


class SlackAdmin:
    """The `/gpt2bot-admin` handler; bolt injects its arguments by name."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._tasks: set[asyncio.Task[None]] = set()

    async def command(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        """`/gpt2bot-admin <group> <action> [arguments]`: curate, retrain, model, stats."""
        await ack()
        try:
            answer = await self._answer(command, client)
        except Exception as error:  # e.g. the audit log could not be written
            answer = incident_sentence(error)
        await respond(text=answer, response_type="ephemeral")

    async def _answer(self, command: dict[str, Any], client: AsyncWebClient) -> str:
        text = unescape(command.get("text", "")).strip()
        words = text.split()
        action = " ".join(words[:2]) if words else "help"
        actor = await self._actor(command, client)
        try:
            await self._app.gate.authorize(actor, f"slack {action}", {"text": command.get("text")})
        except NotAuthorized as refusal:
            return str(refusal)
        service = self._app.admin
        handler, args = _lookup(words)
        if handler is None:
            return USAGE if action == "help" else f"I don't know `{escape(action)}`.\n{USAGE}"
        rest = re.split(r"\s+", text, maxsplit=len(words) - len(args))[-1] if args else ""
        context = AdminContext(service, actor, client, command["channel_id"], self._spawn, rest)
        return await self._run(handler, context, args)

    async def _actor(self, command: dict[str, Any], client: AsyncWebClient) -> Actor:
        """Who asked, in which workspace, and whether Slack says they administer it."""
        user, team = command["user_id"], command.get("team_id")
        if self._app.gate.policy.is_owner(Actor(PLATFORM, user)):
            return Actor(PLATFORM, user, server_id=team)
        try:
            info = (await client.users_info(user=user)).get("user") or {}
        except SlackApiError as error:  # e.g. missing users:read: treated as a member
            log.warning("users.info for %s failed: %s", user, slack_error(error))
            info = {}
        workspace_admin = bool(info.get("is_admin") or info.get("is_owner"))
        return Actor(PLATFORM, user, server_id=team, server_admin=workspace_admin)

    async def _run(self, handler: Handler, context: AdminContext, args: list[str]) -> str:
        try:
            return await handler(context, args)
        except AdminError as error:  # a refusal written for the admin who asked
            return error.sentence(HOW_TO_FORCE)
        except InvalidRequest as error:  # the command's own words could not be read
            return str(error)
        except Exception as error:
            return incident_sentence(error)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)


def _lookup(words: list[str]) -> tuple[Handler | None, list[str]]:
    for size in (2, 1):
        handler = HANDLERS.get(tuple(words[:size]))
        if handler is not None and len(words) >= size:
            return handler, words[size:]
    return None, []


async def _curate_add(ctx: AdminContext, args: list[str]) -> str:
    text = ctx.rest.strip()
    if not text:
        return f"Give the text to add: `{COMMAND} curate add Some good example text`."
    report = await ctx.service.curation.add(ctx.actor.user_id, [text])
    return f"Curated data: {report.summary()}."


async def _curate_list(ctx: AdminContext, args: list[str]) -> str:
    limit = _int_arg(args, "N", default=LIST_LIMIT)
    items = await ctx.service.curation.recent(limit)
    if not items:
        return "No curated samples yet: add one with `curate add TEXT` or rate answers :+1:."
    lines = [f"`#{i.id}` [{i.source}] by {i.added_by}: {escape(i.text[:80])}" for i in items]
    return "\n".join(lines)


async def _curate_remove(ctx: AdminContext, args: list[str]) -> str:
    sample_id = _int_arg(args, "ID")
    await ctx.service.curation.remove(ctx.actor.user_id, sample_id)
    return f"Removed curated sample #{sample_id}."


async def _retrain_now(ctx: AdminContext, args: list[str]) -> str:
    def progress(info: TrainingRunRecord) -> None:
        if info.status in FINISHED_STATUSES:
            ctx.spawn(_tell_finished(ctx, info))

    run = await ctx.service.training.start(ctx.actor.user_id, progress)
    return (
        f"Training run #{run.id} started on {run.dataset_size} samples; I'll tell you when it ends."
    )


async def _tell_finished(ctx: AdminContext, info: TrainingRunRecord) -> None:
    await ctx.tell(_run_text(info))


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("could not report a training run", exc_info=task.exception())


async def _retrain_status(ctx: AdminContext, args: list[str]) -> str:
    run = await ctx.service.training.status()
    return "No training run yet: start one with `retrain now`." if run is None else _run_text(run)


async def _retrain_cancel(ctx: AdminContext, args: list[str]) -> str:
    cancelled = await ctx.service.training.cancel(ctx.actor.user_id)
    return "Cancelled the running training run." if cancelled else "No training run is running."


async def _retrain_schedule(ctx: AdminContext, args: list[str]) -> str:
    if not args:
        return f"Give a cron expression or `off`: `{COMMAND} retrain schedule 0 3 * * 0`."
    cron = None if args == ["off"] else " ".join(args)
    upcoming = await ctx.service.training.schedule(ctx.actor.user_id, cron)
    if cron is None:
        return "Scheduled retraining is off."
    times = ", ".join(t.strftime("%Y-%m-%d %H:%M %Z").strip() for t in upcoming)
    return f"Retraining on `{escape(cron)}`; next runs: {times}."


async def _model_list(ctx: AdminContext, args: list[str]) -> str:
    rows = await ctx.service.registry.versions()
    return "\n".join(_version_line(r) for r in rows) or "No model versions yet."


async def _model_use(ctx: AdminContext, args: list[str]) -> str:
    if not args:
        return f"Name the version: `{COMMAND} model use VERSION [force]`."
    record = await ctx.service.registry.use(ctx.actor.user_id, args[0], force=args[1:] == ["force"])
    return fleet_text.switched(record.name, await ctx.service.fleet.view())


async def _model_rollback(ctx: AdminContext, args: list[str]) -> str:
    record = await ctx.service.registry.rollback(ctx.actor.user_id)
    return "Rolled back. " + fleet_text.switched(record.name, await ctx.service.fleet.view())


async def _stats(ctx: AdminContext, args: list[str]) -> str:
    rows = await ctx.service.reports.stats()
    lines = ["No generations yet, so no ratings to compare."]
    charts: list[tuple[str, str, bytes]] = []
    if rows:
        lines = ["`version · generations · ratings · mean · 👍 share · raters`"] + [
            f"`{r.model_version}` · {r.generations} · {r.ratings} · {r.mean_score:+.2f} · "
            f"{r.positive_share:.0%} · {r.raters}"
            for r in rows
        ]
        charts.append(
            ("ratings.png", "Ratings per version", await ctx.service.reports.stats_chart())
        )
    report = await ab.latest(ctx.service)
    if report is not None:
        lines += ["", ab.experiment_text(report)]
        title = f"A/B experiment #{report.status.id}"
        charts.append(("ab.png", title, await ab_chart(report.status)))
    for filename, title, chart in charts:
        try:
            await ctx.client.files_upload_v2(
                channel=ctx.channel, content=chart, filename=filename, title=title
            )
        except SlackApiError as error:
            lines.append(f"_(chart not posted: Slack said `{slack_error(error)}`)_")
            break
    return "\n".join(lines)


def _run_text(run: TrainingRunRecord) -> str:
    text = f"Training run #{run.id} ({run.trigger}, by {run.requested_by}): {run.status}"
    if run.status in ACTIVE_STATUSES:
        eta = f", about {run.eta_s:.0f}s left" if run.eta_s is not None else ""
        return f"{text}, {run.progress:.0%}{eta}."
    if run.error:
        return f"{text}: {escape(run.error)}."
    loss_before, loss_after = run.eval_before.get("eval_loss"), run.eval_after.get("eval_loss")
    if run.model_version:
        outcome = "promoted" if run.promoted else "kept as candidate"
        text += f"; version {run.model_version} {outcome}"
    if isinstance(loss_before, float) and isinstance(loss_after, float):
        text += f"; held-out loss {loss_before:.3f} → {loss_after:.3f}"
    return text + "."


def _version_line(r: ModelVersionRecord) -> str:
    loss = r.metrics.get("eval_loss")
    extra = f" · eval_loss {loss:.3f}" if isinstance(loss, float) else ""
    marker = "▶" if r.status == "active" else "·"
    return f"{marker} `{r.name}` {r.status} · parent {r.parent or '-'}{extra}"


def _int_arg(args: list[str], name: str, default: int | None = None) -> int:
    if not args and default is not None:
        return default
    if len(args) != 1 or not args[0].lstrip("#").isdigit():
        raise InvalidRequest(f"{name} must be a number, e.g. `12`.")
    return int(args[0].lstrip("#"))


async def _server_show(ctx: AdminContext, args: list[str]) -> str:
    record = await ctx.service.servers.get(PLATFORM, ctx.server_id)
    return _server_text(record)


async def _server_channels(ctx: AdminContext, args: list[str]) -> str:
    if not args:
        return f"Name the channels, or `all`: `{COMMAND} server channels #bots #playground`."
    ids = [] if args == ["all"] else re.findall(r"C[A-Z0-9]{4,}", " ".join(args))
    return await _server_set(ctx, allowed_channels=ids)


async def _server_cooldown(ctx: AdminContext, args: list[str]) -> str:
    try:
        seconds = float(args[0]) if len(args) == 1 else None
    except ValueError:
        seconds = None
    if seconds is None:
        return f"Give the seconds: `{COMMAND} server cooldown 10` (0 turns it off)."
    return await _server_set(ctx, cooldown_s=seconds)


async def _server_caps(ctx: AdminContext, args: list[str]) -> str:
    given = dict(arg.split("=", 1) for arg in args if "=" in arg)
    if not given or set(given) - {"max_new_tokens", "samples"}:
        return f"Give caps as `{COMMAND} server caps max_new_tokens=64 samples=2`."
    changes = {f"{k}_cap": _int_arg([v], k) if v else None for k, v in given.items()}
    return await _server_set(ctx, **changes)


async def _server_training(ctx: AdminContext, args: list[str]) -> str:
    if args not in (["on"], ["off"]):
        return f"Say `{COMMAND} server training on` or `off`."
    return await _server_set(ctx, ratings_train=args == ["on"])


async def _server_template(ctx: AdminContext, args: list[str]) -> str:
    """`server template [#channel] TEXT` with {prompt} once, or `none`."""
    place = re.match(r"\s*<#(C[A-Z0-9]+)(?:\|[^>]*)?>\s*", ctx.rest)  # a channel mention
    text = ctx.rest[place.end() :] if place else ctx.rest.strip()
    if not text:
        return f"Give the template: `{COMMAND} server template [#channel] Q: {{prompt}}\\nA:`."
    current = await ctx.service.servers.get(PLATFORM, ctx.server_id)
    chosen = None if text.lower() in ("none", "off") else text
    key = place[1] if place else ""  # a channel, or the whole workspace
    return await _server_set(ctx, templates={**current.templates, key: chosen})


async def _server_set(ctx: AdminContext, **changes: Any) -> str:
    record = await ctx.service.servers.update(ctx.actor.user_id, PLATFORM, ctx.server_id, **changes)
    return "Saved.\n" + _server_text(record)


def _server_text(record: ServerSettingsRecord) -> str:
    facts = "; ".join(f"{label}: {value}" for label, value in settings_facts(record, roles=False))
    return f"This workspace: {facts}."


HANDLERS: dict[tuple[str, ...], Handler] = {
    ("curate", "add"): _curate_add,
    ("curate", "list"): _curate_list,
    ("curate", "remove"): _curate_remove,
    ("retrain", "now"): _retrain_now,
    ("retrain", "status"): _retrain_status,
    ("retrain", "cancel"): _retrain_cancel,
    ("retrain", "schedule"): _retrain_schedule,
    ("model", "list"): _model_list,
    ("model", "use"): _model_use,
    ("model", "rollback"): _model_rollback,
    ("stats",): _stats,
    ("server", "show"): _server_show,
    ("server", "channels"): _server_channels,
    ("server", "cooldown"): _server_cooldown,
    ("server", "caps"): _server_caps,
    ("server", "training"): _server_training,
    ("server", "template"): _server_template,
    ("review", "next"): review.review_next,
    ("review", "vote"): review.review_vote,
    ("review", "stats"): review.review_stats,
    ("ab", "start"): ab.ab_start,
    ("ab", "status"): ab.ab_status,
    ("ab", "stop"): ab.ab_stop,
}
