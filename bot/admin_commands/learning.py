"""The shared model's commands: `curate`, `retrain`, `model` and `stats` (bot owners; `model
list`, `retrain status` and `stats` for any admin)."""

from __future__ import annotations

from admin.ab_report import ab_chart
from bot.admin_commands.ab import experiment_text, latest
from bot.admin_commands.context import AdminReply, Chart, Command, Context, Surface
from bot.platforms import fleet_text
from storage import ACTIVE_STATUSES, FINISHED_STATUSES, ModelVersionRecord, TrainingRunRecord

LIST_LIMIT = 20
PREVIEW_CHARS = 80  # of a curated text in `curate list`


async def curate_add(ctx: Context) -> str:
    text = ctx.rest.strip()
    if not text:
        example = ctx.surface.example("curate add Some good example text")
        return f"Give the text to add: {example}."
    report = await ctx.services.curation.add(ctx.actor.user_id, [text])
    return f"Curated data: {report.summary()}."


async def curate_list(ctx: Context) -> str:
    items = await ctx.services.curation.recent(ctx.number("N", default=LIST_LIMIT))
    if not items:
        add = ctx.surface.code("curate add TEXT")
        return (
            f"No curated samples yet: add one with {add} or rate answers {ctx.surface.thumbs_up}."
        )
    code, escape = ctx.surface.code, ctx.surface.escape
    return "\n".join(
        f"{code(f'#{i.id}')} [{i.source}] by {i.added_by}: {escape(i.text[:PREVIEW_CHARS])}"
        for i in items
    )


async def curate_remove(ctx: Context) -> str:
    sample_id = ctx.number("ID")
    await ctx.services.curation.remove(ctx.actor.user_id, sample_id)
    return f"Removed curated sample #{sample_id}."


async def retrain_now(ctx: Context) -> str:
    tell = ctx.tell

    def progress(info: TrainingRunRecord) -> None:
        if tell is not None and info.status in FINISHED_STATUSES:
            ctx.spawn(tell(run_text(info, ctx.surface)))

    run = await ctx.services.training.start(ctx.actor.user_id, progress)
    later = "; I'll tell you when it ends" if tell is not None else ""
    return f"Training run #{run.id} started on {run.dataset_size} samples{later}."


async def retrain_status(ctx: Context) -> str:
    run = await ctx.services.training.status()
    if run is None:
        return f"No training run yet: start one with {ctx.surface.code('retrain now')}."
    return run_text(run, ctx.surface)


async def retrain_cancel(ctx: Context) -> str:
    cancelled = await ctx.services.training.cancel(ctx.actor.user_id)
    return "Cancelled the running training run." if cancelled else "No training run is running."


async def retrain_schedule(ctx: Context) -> str:
    if not ctx.args:
        example = ctx.surface.example("retrain schedule 0 3 * * 0")
        return f"Give a cron expression or {ctx.surface.code('off')}: {example}."
    cron = None if ctx.args == ["off"] else " ".join(ctx.args)
    upcoming = await ctx.services.training.schedule(ctx.actor.user_id, cron)
    if cron is None:
        return "Scheduled retraining is off."
    times = ", ".join(t.strftime("%Y-%m-%d %H:%M %Z").strip() for t in upcoming)
    return f"Retraining on {ctx.surface.code(ctx.surface.escape(cron))}; next runs: {times}."


async def model_list(ctx: Context) -> str:
    rows = await ctx.services.registry.versions()
    return "\n".join(version_line(r, ctx.surface) for r in rows) or "No model versions yet."


async def model_use(ctx: Context) -> str:
    if not ctx.args:
        return f"Name the version: {ctx.surface.example('model use VERSION [force]')}."
    force = ctx.args[1:] == ["force"]
    record = await ctx.services.registry.use(ctx.actor.user_id, ctx.args[0], force=force)
    return fleet_text.switched(record.name, await ctx.services.fleet.view())


async def model_rollback(ctx: Context) -> str:
    record = await ctx.services.registry.rollback(ctx.actor.user_id)
    return "Rolled back. " + fleet_text.switched(record.name, await ctx.services.fleet.view())


async def stats(ctx: Context) -> AdminReply:
    rows = await ctx.services.reports.stats()
    code = ctx.surface.code
    lines = ["No generations yet, so no ratings to compare."]
    charts = []
    if rows:
        lines = [code("version · generations · ratings · mean · 👍 share · raters")] + [
            f"{code(r.model_version)} · {r.generations} · {r.ratings} · {r.mean_score:+.2f} · "
            f"{r.positive_share:.0%} · {r.raters}"
            for r in rows
        ]
        chart = await ctx.services.reports.stats_chart()
        charts.append(Chart("ratings.png", "Ratings per version", chart))
    report = await latest(ctx.services)
    if report is not None:
        lines += ["", experiment_text(report, ctx.surface)]
        title = f"A/B experiment #{report.status.id}"
        charts.append(Chart("ab.png", title, await ab_chart(report.status)))
    return AdminReply("\n".join(lines), tuple(charts))


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
    """One model version: ▶ marks the active one; an adapter names its base version."""
    loss = record.metrics.get("eval_loss")
    extra = f" · eval_loss {loss:.3f}" if isinstance(loss, float) else ""
    marker = "▶" if record.status == "active" else "·"
    parent = record.parent or "-"
    base = record.base_version
    kind = "full model" if base is None else f"adapter of {surface.code(base)}"
    return f"{marker} {surface.code(record.name)} {record.status} · {kind} · parent {parent}{extra}"


COMMANDS = (
    Command(("curate", "add"), "curate add TEXT", curate_add),
    Command(("curate", "list"), "curate list [N]", curate_list),
    Command(("curate", "remove"), "curate remove ID", curate_remove),
    Command(("retrain", "now"), "retrain now", retrain_now),
    Command(("retrain", "status"), "retrain status", retrain_status),
    Command(("retrain", "cancel"), "retrain cancel", retrain_cancel),
    Command(("retrain", "schedule"), "retrain schedule CRON|off", retrain_schedule),
    Command(("model", "list"), "model list", model_list),
    Command(("model", "use"), "model use VERSION [force]", model_use),
    Command(("model", "rollback"), "model rollback", model_rollback),
    Command(("stats",), "stats", stats),
)
