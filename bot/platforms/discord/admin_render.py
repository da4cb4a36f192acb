"""Text of `/admin` answers: training runs, model versions, curated samples, rating stats, the
A/B experiment."""

from __future__ import annotations

from datetime import datetime

from discord.utils import escape_markdown, format_dt

from admin.ab_report import ABReport
from admin.fleet_view import FleetView
from bot.platforms import ab_text, fleet_text
from bot.platforms.server_text import settings_facts
from storage import (
    ACTIVE_STATUSES,
    CuratedSampleRecord,
    ModelVersionRecord,
    ReportedRecord,
    ServerSettingsRecord,
    TrainingRunRecord,
    VersionRatingStats,
)

SAMPLE_PREVIEW_CHARS = 80
AB_CHART_FILENAME = "ab.png"
AB_REVIEW_HINT = " (`/admin review next` shows the pair to judge)"


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else format_dt(moment, "R")


def training_run(run: TrainingRunRecord | None) -> str:
    if run is None:
        return "No training run yet. Start one with `/admin retrain now`."
    lines = [f"**Training run #{run.id}**: {run.status} ({run.trigger}, by {run.requested_by})"]
    if run.status in ACTIVE_STATUSES:
        eta = f", about {run.eta_s:.0f} s left" if run.eta_s is not None else ""
        lines.append(f"progress {run.progress:.0%}{eta} · {run.dataset_size} samples")
    else:
        lines.append(f"{run.dataset_size} samples · finished {_when(run.finished_at)}")
    before, after = run.eval_before.get("eval_loss"), run.eval_after.get("eval_loss")
    if isinstance(before, float) and isinstance(after, float):
        lines.append(f"held-out loss {before:.3f} → {after:.3f}")
    if run.model_version:
        promoted = {True: "promoted", False: "kept as candidate", None: ""}[run.promoted]
        lines.append(f"new version `{run.model_version}` {promoted}".rstrip())
    if run.error:
        lines.append(f"error: {run.error}")
    return "\n".join(lines)


def model_versions(rows: list[ModelVersionRecord]) -> str:
    if not rows:
        return "No model versions yet."
    lines = ["**Model versions** (★ = serving)"]
    for row in rows:
        loss = row.metrics.get("eval_loss")
        extra = f" · eval loss {loss:.3f}" if isinstance(loss, float) else ""
        mark = "★" if row.status == "active" else "·"
        kind = f"adapter of `{row.base_version}`" if row.base_version else "full model"
        lines.append(
            f"{mark} `{row.name}` {row.status} · {kind} · parent {row.parent or '-'}{extra} · "
            f"created {_when(row.created_at)}"
        )
    return "\n".join(lines)


def switched(row: ModelVersionRecord, fleet: FleetView) -> str:
    return fleet_text.switched(row.name, fleet, lambda name: f"`{name}`")


def curated(items: list[CuratedSampleRecord]) -> str:
    if not items:
        return "No curated samples yet. Add some with `/admin curate add`."
    lines = ["**Curated samples** (newest first)"]
    for item in items:
        text = item.text.replace("\n", " ")
        if len(text) > SAMPLE_PREVIEW_CHARS:
            text = text[:SAMPLE_PREVIEW_CHARS] + "…"
        lines.append(f"`{item.id}` [{item.source}] {escape_markdown(text)}")
    return "\n".join(lines)


def review_queue(items: list[CuratedSampleRecord]) -> str:
    if not items:
        return "Nothing waits for review: no rated output has passed the rating rule lately."
    lines = [
        "**Waiting for review** (oldest first; `/admin curate queue approve:ID` or `reject:ID`)"
    ]
    for item in items:
        text = item.text.replace("\n", " ")
        if len(text) > SAMPLE_PREVIEW_CHARS:
            text = text[:SAMPLE_PREVIEW_CHARS] + "…"
        why = item.why or {}
        up, down, bound = why.get("up", "?"), why.get("down", "?"), why.get("lower_bound")
        votes = f"👍 {up} / 👎 {down}, bound {bound}"
        lines.append(f"`{item.id}` ({votes}) {escape_markdown(text)}")
    return "\n".join(lines)


def schedule(next_runs: list[datetime]) -> str:
    if not next_runs:
        return "Scheduled retraining is off."
    return "Retraining scheduled. Next runs: " + ", ".join(format_dt(t, "f") for t in next_runs)


def rating_stats(rows: list[VersionRatingStats]) -> str:
    if not rows:
        return "No generations yet, so no ratings to compare."
    lines = [
        "**Ratings per model version**",
        "```",
        "version              gens  ratings   mean  👍 share",
    ]
    for row in rows:
        lines.append(
            f"{row.model_version[:20]:<20} {row.generations:>5} {row.ratings:>8} "
            f"{row.mean_score:>+6.2f} {row.positive_share:>8.0%}"
        )
    lines.append("```")
    return "\n".join(lines)


def server_settings(record: ServerSettingsRecord) -> str:
    facts = [f"{label}: {value}" for label, value in settings_facts(record)]
    return "\n".join(["**This server's settings**", *facts])


def reported(rows: list[ReportedRecord]) -> str:
    if not rows:
        return "No output of this server is hidden by reports."
    lines = ["**Hidden after 🚩 reports** (`/admin server delete` or `/admin server keep`)"]
    for row in rows:
        text = escape_markdown(" ".join(row.output.split())[:SAMPLE_PREVIEW_CHARS])
        lines.append(f"`#{row.generation_id}` · {row.reports} report(s) · {text}")
    return "\n".join(lines)


def _bold(text: str) -> str:
    return f"**{text}**"


def _code(text: str) -> str:
    return f"`{text}`"


def experiment(report: ABReport) -> str:
    """An A/B experiment as Discord markdown (version names are the registry's own)."""
    return "\n".join(ab_text.experiment_lines(report, _bold, _code, AB_REVIEW_HINT))
