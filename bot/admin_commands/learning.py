"""The shared model's commands: `curate`, `retrain`, `model` and `stats` (bot owners; `model
list`, `retrain status` and `stats` for any admin).

Each command reads its options by name (a typed line's words become them in its `parse`),
does the work through the admin services and hands the result to `ctx.render`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from admin.ab_report import ab_chart
from bot.admin_commands.ab import latest
from bot.admin_commands.context import Command, Context
from bot.admin_commands.surface import AdminReply, Chart
from bot.params import InvalidRequest
from storage import FINISHED_STATUSES, TrainingRunRecord

LIST_LIMIT = 20
QUEUE_LIMIT = 20
MAX_UPLOAD_BYTES = 8 * 1024 * 1024  # curated-sample files larger than this are refused


def _rest(ctx: Context) -> dict[str, Any]:
    return {"text": ctx.rest.strip()}


async def curate_add(ctx: Context) -> str:
    """Options: `text` (one sample) and/or `file` (an `Upload`: .txt one per line, .jsonl)."""
    text, upload = ctx.options.get("text"), ctx.options.get("file")
    if not text and upload is None:
        return ctx.render.curate_usage()
    reports = []
    if text:
        reports.append(await ctx.services.curation.add(ctx.actor.user_id, [text]))
    if upload is not None:
        if upload.size > MAX_UPLOAD_BYTES:
            raise InvalidRequest(f"{upload.filename} is over {MAX_UPLOAD_BYTES // 2**20} MiB.")
        content = await upload.read()
        report = await ctx.services.curation.add_file(ctx.actor.user_id, upload.filename, content)
        reports.append(report)
    return ctx.render.curated_added(reports)


async def curate_list(ctx: Context) -> str:
    """Options: `limit` (the newest N samples)."""
    items = await ctx.services.curation.recent(ctx.options.get("limit") or LIST_LIMIT)
    return ctx.render.curated(items)


async def curate_remove(ctx: Context) -> str:
    """Options: `sample_id`."""
    sample_id = ctx.options["sample_id"]
    await ctx.services.curation.remove(ctx.actor.user_id, sample_id)
    return ctx.render.curate_removed(sample_id)


def queue_options(command: str) -> Callable[[Context], dict[str, Any]]:
    """Typed lines' options of `command` (a review queue): `approve ID` or `reject ID`."""

    def parse(ctx: Context) -> dict[str, Any]:
        if not ctx.args:
            return {}
        if len(ctx.args) != 2 or ctx.args[0] not in ("approve", "reject"):
            how = ctx.surface.example(f"{command} approve ID")
            raise InvalidRequest(f"Say {how} or {ctx.surface.code('reject ID')}.")
        return {ctx.args[0]: ctx.number("ID", args=ctx.args[1:])}

    return parse


def queue_decision(ctx: Context) -> tuple[int, bool] | None:
    """(the sample, whether it is approved) of a review queue's options; None lists the queue."""
    approve, reject = ctx.options.get("approve"), ctx.options.get("reject")
    if approve is not None and reject is not None:
        raise InvalidRequest("Approve or reject one sample at a time.")
    if approve is not None:
        return int(approve), True
    return None if reject is None else (int(reject), False)


async def curate_queue(ctx: Context) -> str:
    """Options: `approve` or `reject` (a queued sample's id); neither lists the queue."""
    decision = queue_decision(ctx)
    if decision is None:
        return ctx.render.review_queue(await ctx.services.curation.pending(QUEUE_LIMIT))
    sample_id, ok = decision
    done = await ctx.services.curation.review(ctx.actor.user_id, sample_id, ok)
    return ctx.render.queue_decided(done, ok)


def run_progress(ctx: Context) -> Callable[[TrainingRunRecord], None]:
    """What a started run reports to: the platform's progress, else one message at its end."""
    tell = ctx.tell

    def told_at_the_end(info: TrainingRunRecord) -> None:
        if tell is not None and info.status in FINISHED_STATUSES:
            ctx.spawn(tell(ctx.render.training_run(info)))

    return ctx.progress or told_at_the_end


async def retrain_now(ctx: Context) -> str:
    run = await ctx.services.training.start(ctx.actor.user_id, run_progress(ctx))
    return ctx.render.run_started(run, telling=ctx.tell is not None)


async def retrain_status(ctx: Context) -> str:
    return ctx.render.training_run(await ctx.services.training.status())


async def retrain_cancel(ctx: Context) -> str:
    return ctx.render.run_cancelled(await ctx.services.training.cancel(ctx.actor.user_id))


def _cron(ctx: Context) -> dict[str, Any]:
    if not ctx.args:
        example = ctx.surface.example("retrain schedule 0 3 * * 0")
        raise InvalidRequest(f"Give a cron expression or {ctx.surface.code('off')}: {example}.")
    return {"cron": None if ctx.args == ["off"] else " ".join(ctx.args)}


async def retrain_schedule(ctx: Context) -> str:
    """Options: `cron` (five cron fields), or None to turn scheduled retraining off."""
    cron = ctx.options.get("cron")
    upcoming = await ctx.services.training.schedule(ctx.actor.user_id, cron)
    return ctx.render.schedule(cron, upcoming)


async def model_list(ctx: Context) -> str:
    return ctx.render.versions(await ctx.services.registry.versions())


def _version(ctx: Context) -> dict[str, Any]:
    if not ctx.args:
        raise InvalidRequest(
            f"Name the version: {ctx.surface.example('model use VERSION [force]')}."
        )
    return {"version": ctx.args[0], "force": ctx.args[1:] == ["force"]}


async def model_use(ctx: Context) -> str:
    """Options: `version`, and `force` past the promotion gate."""
    user, version = ctx.actor.user_id, ctx.options["version"]
    record = await ctx.services.registry.use(user, version, bool(ctx.options.get("force")))
    return ctx.render.switched(record, await ctx.services.fleet.view(), rolled_back=False)


async def model_rollback(ctx: Context) -> str:
    record = await ctx.services.registry.rollback(ctx.actor.user_id)
    return ctx.render.switched(record, await ctx.services.fleet.view(), rolled_back=True)


async def stats(ctx: Context) -> AdminReply | str:
    rows = await ctx.services.reports.stats()
    chart = Chart("ratings.png", "Ratings per version", await ctx.services.reports.stats_chart())
    report = await latest(ctx.services)
    experiment_chart = None
    if report is not None:
        title = f"A/B experiment #{report.status.id}"
        experiment_chart = Chart("ab.png", title, await ab_chart(report.status))
    return ctx.render.stats(rows, chart, report, experiment_chart)


def _limit(ctx: Context) -> dict[str, Any]:
    return {"limit": ctx.number("N", default=LIST_LIMIT)}


def _sample_id(ctx: Context) -> dict[str, Any]:
    return {"sample_id": ctx.number("ID")}


COMMANDS = (
    Command(("curate", "add"), "curate add TEXT", curate_add, _rest),
    Command(("curate", "list"), "curate list [N]", curate_list, _limit),
    Command(("curate", "remove"), "curate remove ID", curate_remove, _sample_id),
    Command(
        ("curate", "queue"),
        "curate queue [approve ID|reject ID]",
        curate_queue,
        queue_options("curate queue"),
    ),
    Command(("retrain", "now"), "retrain now", retrain_now),
    Command(("retrain", "status"), "retrain status", retrain_status),
    Command(("retrain", "cancel"), "retrain cancel", retrain_cancel),
    Command(("retrain", "schedule"), "retrain schedule CRON|off", retrain_schedule, _cron),
    Command(("model", "list"), "model list", model_list),
    Command(("model", "use"), "model use VERSION [force]", model_use, _version),
    Command(("model", "rollback"), "model rollback", model_rollback),
    Command(("stats",), "stats", stats),
)
