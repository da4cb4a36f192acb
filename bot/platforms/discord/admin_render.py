"""Text of `/admin` answers: training runs, model versions, curated samples, rating stats, the
A/B experiment, the blind review; `DiscordRenderer` words the shared command set with them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from discord.utils import escape_markdown, format_dt

from admin.ab_report import ABReport
from admin.fleet_view import FleetView
from admin.results import BlindPair, CurationReport
from bot.admin_commands import AdminReply, Chart, Renderer, Surface
from bot.platforms import ab_text, fleet_text
from bot.platforms.discord.jobs import describe_error
from bot.platforms.server_text import settings_facts
from storage import (
    ACTIVE_STATUSES,
    CuratedSampleRecord,
    ModelVersionRecord,
    PairWinRate,
    ReportedRecord,
    ReviewItemRecord,
    ServerSettingsRecord,
    TrainingRunRecord,
    VersionRatingStats,
)

SAMPLE_PREVIEW_CHARS = 80
AB_REVIEW_HINT = " (`/admin review next` shows the pair to judge)"
NO_EXPERIMENT = "No A/B experiment has run yet: `/admin ab start version:NAME` starts one."
PROMPT_CHARS = 500  # one message holds the prompt and both outputs (Discord: 2,000)
OUTPUT_CHARS = 600
SOURCES = {"fixed": "a fixed evaluation prompt", "recent": "a member's recent prompt"}


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


def review_queue(items: list[CuratedSampleRecord], command: str = "curate queue") -> str:
    if not items:
        return "Nothing waits for review: no rated output has passed the rating rule lately."
    lines = [f"**Waiting for review** (oldest first; `/admin {command} approve:ID` or `reject:ID`)"]
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


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _quote(text: str, limit: int) -> str:
    body = escape_markdown(_clip(text, limit)) or "*(nothing: the model ended the text here)*"
    return "\n".join(f"> {line}" for line in body.splitlines() or [""])


def pair_text(item: BlindPair | ReviewItemRecord) -> str:
    """A blind-review item as shown before the verdict: no version names."""
    return "\n".join(
        [
            f"**Blind review #{item.id}**: which output is better? "
            f"({SOURCES.get(item.source, item.source)}; same seed and settings for both)",
            f"**Prompt:** {escape_markdown(_clip(item.prompt, PROMPT_CHARS))}",
            "**A**",
            _quote(item.output_a, OUTPUT_CHARS),
            "**B**",
            _quote(item.output_b, OUTPUT_CHARS),
        ]
    )


def revealed_text(item: ReviewItemRecord) -> str:
    sides = f"A was `{item.version_a}`, B was `{item.version_b}`"
    verdict = "you called it a tie" if item.winner is None else f"you preferred `{item.winner}`"
    return f"{pair_text(item)}\n\n✅ {sides}: {verdict}."


def win_rates_text(rates: list[PairWinRate]) -> str:
    if not rates:
        return "No blind-review verdicts yet. `/admin review next` shows a pair to judge."
    lines = ["**Blind review win rates** (a tie counts half a win for each)"]
    for r in rates:
        lines.append(
            f"`{r.first}` vs `{r.second}`: {r.judged} judged · `{r.first}` {r.first_wins} "
            f"won ({r.first_rate:.0%}) · `{r.second}` {r.second_wins} won ({r.second_rate:.0%})"
            f" · {r.ties} tied"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class ButtonsReply(AdminReply):
    """A reply with buttons under it: review item `item_id`'s `choices` ("a", "tie", "b",
    "next"); the review commands turn them into their buttons."""

    item_id: int = 0
    choices: tuple[str, ...] = ()


SURFACE = Surface(escape=escape_markdown)


class DiscordRenderer(Renderer):
    """The shared `/admin` command set worded as Discord shows it: Markdown, relative
    timestamps, the option names members type (`force:True`), charts as attachments, buttons
    under a blind pair."""

    def __init__(self) -> None:
        super().__init__(SURFACE)

    def error(self, error: Exception, action: str) -> str:
        return describe_error(error, f"/admin {action}")

    def curate_usage(self) -> str:
        return "Give `text` or attach a `file` (.txt, one sample per line; .jsonl)."

    def curated_added(self, reports: list[CurationReport]) -> str:
        return "Curated samples: " + "; ".join(r.summary() for r in reports) + "."

    def curated(self, items: list[CuratedSampleRecord]) -> str:
        return curated(items)

    def curate_removed(self, sample_id: int) -> str:
        return f"Sample `{sample_id}` will not be used for training any more."

    def review_queue(self, items: list[CuratedSampleRecord], command: str = "curate queue") -> str:
        return review_queue(items, command)

    def queue_decided(self, sample: CuratedSampleRecord, approved: bool) -> str:
        verb = "approved: it joins the next training run" if approved else "rejected for good"
        return f"Sample `{sample.id}` {verb}."

    def run_started(self, run: TrainingRunRecord, telling: bool) -> str:
        return training_run(run)  # the answer itself shows the progress

    def training_run(self, run: TrainingRunRecord | None) -> str:
        return training_run(run)

    def run_cancelled(self, cancelled: bool) -> str:
        return "Training run cancelled." if cancelled else "No training run is running."

    def schedule(self, cron: str | None, upcoming: list[datetime]) -> str:
        return schedule(upcoming)

    def versions(self, rows: list[ModelVersionRecord]) -> str:
        return model_versions(rows)

    def switched(self, record: ModelVersionRecord, fleet: FleetView, rolled_back: bool) -> str:
        return switched(record, fleet)

    def stats(
        self,
        rows: list[VersionRatingStats],
        chart: Chart,
        experiment: ABReport | None,
        experiment_chart: Chart | None,
    ) -> AdminReply:
        text, charts = rating_stats(rows), [chart]  # the chart even before any rating
        if experiment is not None and experiment_chart is not None:
            text += "\n\n" + self.experiment_text(experiment)
            charts.append(experiment_chart)
        return AdminReply(text, tuple(charts))

    def experiment_text(self, report: ABReport) -> str:
        return "\n".join(ab_text.experiment_lines(report, _bold, _code, AB_REVIEW_HINT))

    def experiment(self, report: ABReport, chart: Chart, intro: str = "") -> AdminReply:
        return AdminReply(f"{intro}{self.experiment_text(report)}", (chart,))

    def no_experiment(self) -> str:
        return NO_EXPERIMENT

    def blind_pair(self, item: BlindPair, command: str = "review") -> AdminReply:
        return ButtonsReply(pair_text(item), item_id=item.id, choices=("a", "tie", "b"))

    def revealed(self, item: ReviewItemRecord, command: str = "review") -> AdminReply:
        return ButtonsReply(revealed_text(item), item_id=item.id, choices=("next",))

    def win_rates(self, rates: list[PairWinRate], command: str = "review") -> str:
        return win_rates_text(rates)

    def server_settings(self, record: ServerSettingsRecord, saved: bool) -> str:
        return ("Saved.\n" if saved else "") + server_settings(record)

    def reported(self, rows: list[ReportedRecord]) -> str:
        return reported(rows)

    def kept(self, generation: int) -> str:
        return f"Generation `#{generation}` is shown again; its reports are cleared."

    def deleted(self, generation: int, message_left: bool) -> str:
        return f"Generation `#{generation}` is deleted (text, ratings, training use)."
