"""`Renderer`: how a platform words what the admin commands found or did.

The commands (`learning.py`, `ab.py`) do the work and hand each result to a method here; the
methods write the text every typed platform shows (Slack, `examples/linechat`), in the markup
its `Surface` describes. A platform that words some answers its own way (Discord: its own
layout, chart attachments, buttons under a blind pair) subclasses `Renderer` and overrides just
those methods; authorization, the audit log and the work stay in one place.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from admin.ab_report import ABReport
from admin.errors import AdminError
from admin.fleet_view import FleetView
from admin.results import BlindPair, CurationReport, LineStatus
from bot.admin_commands.surface import AdminReply, Chart, Surface
from bot.params import InvalidRequest
from bot.platforms import ab_text, fleet_text
from bot.platforms.server_text import settings_facts
from model.backends.base import BackendError
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

PREVIEW_CHARS = 80  # of a curated text in `curate list`
PROMPT_CHARS = 500
OUTPUT_CHARS = 800
# what a line's admins may do
LINE_VERBS = ("add", "queue", "retrain", "schedule", "use", "rollback", "ab", "review")
SOURCES = {"fixed": "a fixed evaluation prompt", "recent": "a member's recent prompt"}

log = logging.getLogger(__name__)


def incident_sentence(error: BaseException) -> str:
    """Log an unexpected error with an id and return the sentence users see instead."""
    incident = uuid.uuid4().hex[:8]
    log.error("admin command failed (incident %s)", incident, exc_info=error)
    return f"Something went wrong on our side (incident {incident}). Please try again later."


class Renderer:
    """The command set's answers as text in `surface`'s markup; override to word some
    differently. Methods return the reply's text, or an `AdminReply` where charts go with it."""

    def __init__(self, surface: Surface | None = None) -> None:
        self.surface = surface or Surface()

    def _code(self, text: str) -> str:
        return self.surface.code(self.surface.escape(text))

    def _bold(self, text: str) -> str:
        return self.surface.bold(self.surface.escape(text))

    def error(self, error: Exception, action: str) -> str:
        """What the admin sees when `action` failed: a refusal or mistake as written, anything
        else as an incident (logged with its id)."""
        if isinstance(error, AdminError):
            return error.sentence(self.surface.force)
        if isinstance(error, InvalidRequest | BackendError):
            return str(error)
        return incident_sentence(error)

    # curate

    def curate_usage(self) -> str:
        """`curate add` with nothing to add."""
        return f"Give the text to add: {self.surface.example('curate add Some good example text')}."

    def curated_added(self, reports: list[CurationReport]) -> str:
        return "Curated data: " + "; ".join(r.summary() for r in reports) + "."

    def curated(self, items: list[CuratedSampleRecord]) -> str:
        if not items:
            add, up = self.surface.code("curate add TEXT"), self.surface.thumbs_up
            return f"No curated samples yet: add one with {add} or rate answers {up}."
        code, escape = self.surface.code, self.surface.escape
        return "\n".join(
            f"{code(f'#{i.id}')} [{i.source}] by {i.added_by}: {escape(i.text[:PREVIEW_CHARS])}"
            for i in items
        )

    def curate_removed(self, sample_id: int) -> str:
        return f"Removed curated sample #{sample_id}."

    def review_queue(self, items: list[CuratedSampleRecord], command: str = "curate queue") -> str:
        if not items:
            return "Nothing waits for review: no rated output has passed the rating rule lately."
        code = self.surface.code
        how = f"{self.surface.example(f'{command} approve ID')} or {code('reject ID')}"
        lines = [f"{self.surface.bold('Waiting for review')} (oldest first; {how})"]
        for item in items:
            why = item.why or {}
            votes = f"👍 {why.get('up', '?')} / 👎 {why.get('down', '?')}"
            text = self.surface.escape(" ".join(item.text.split())[:PREVIEW_CHARS])
            lines.append(f"{code(f'#{item.id}')} ({votes}, bound {why.get('lower_bound')}) {text}")
        return "\n".join(lines)

    def queue_decided(self, sample: CuratedSampleRecord, approved: bool) -> str:
        verb = "approved: it joins the next training run" if approved else "rejected for good"
        return f"Sample #{sample.id} {verb}."

    # retrain

    def run_started(self, run: TrainingRunRecord, telling: bool) -> str:
        """`retrain now` answered; `telling`: the end of the run will be told."""
        later = "; I'll tell you when it ends" if telling else ""
        return f"Training run #{run.id} started on {run.dataset_size} samples{later}."

    def training_run(self, run: TrainingRunRecord | None) -> str:
        """A training run in one sentence: progress while it runs, its outcome once it ended."""
        if run is None:
            return f"No training run yet: start one with {self.surface.code('retrain now')}."
        text = f"Training run #{run.id} ({run.trigger}, by {run.requested_by}): {run.status}"
        if run.status in ACTIVE_STATUSES:
            eta = f", about {run.eta_s:.0f}s left" if run.eta_s is not None else ""
            return f"{text}, {run.progress:.0%}{eta}."
        if run.error:
            return f"{text}: {self.surface.escape(run.error)}."
        before, after = run.eval_before.get("eval_loss"), run.eval_after.get("eval_loss")
        if run.model_version:
            outcome = "promoted" if run.promoted else "kept as candidate"
            text += f"; version {run.model_version} {outcome}"
        if isinstance(before, float) and isinstance(after, float):
            text += f"; held-out loss {before:.3f} → {after:.3f}"
        return text + "."

    def run_cancelled(self, cancelled: bool) -> str:
        return "Cancelled the running training run." if cancelled else "No training run is running."

    def schedule(self, cron: str | None, upcoming: list[datetime]) -> str:
        if cron is None:
            return "Scheduled retraining is off."
        times = ", ".join(t.strftime("%Y-%m-%d %H:%M %Z").strip() for t in upcoming)
        return f"Retraining on {self._code(cron)}; next runs: {times}."

    # model

    def versions(self, rows: list[ModelVersionRecord]) -> str:
        return "\n".join(self.version_line(r) for r in rows) or "No model versions yet."

    def version_line(self, record: ModelVersionRecord) -> str:
        """One model version: ▶ marks the active one; an adapter names its base version."""
        loss = record.metrics.get("eval_loss")
        extra = f" · eval_loss {loss:.3f}" if isinstance(loss, float) else ""
        marker = "▶" if record.status == "active" else "·"
        base, code = record.base_version, self.surface.code
        kind = "full model" if base is None else f"adapter of {code(base)}"
        parent = record.parent or "-"
        return f"{marker} {code(record.name)} {record.status} · {kind} · parent {parent}{extra}"

    def switched(self, record: ModelVersionRecord, fleet: FleetView, rolled_back: bool) -> str:
        back = "Rolled back. " if rolled_back else ""
        return back + fleet_text.switched(record.name, fleet)

    # model lines

    def line(self, status: LineStatus) -> str:
        """A server's model line: enabled or not, what its members get, its versions."""
        key = self._code(status.key)
        if not status.enabled:
            head = f"{key} has no model line of its own: its members get the shared version."
        else:
            active = status.active
            serves = "the shared version" if active is None else self._code(active.name)
            shares = "also train" if status.shares else "stay out of"
            head = (
                f"{key} has its own model line: its members get {serves}; its texts and "
                f"ratings {shares} the shared model."
            )
        rows = [head, *(self.version_line(v) for v in status.versions)]
        if status.enabled and status.next_runs is not None:
            times = ", ".join(f"{t:%Y-%m-%d %H:%M} UTC" for t in status.next_runs)
            none = f"No retrain schedule of its own ({self.surface.code('line schedule CRON')})."
            rows.append(f"Scheduled retraining: next runs {times}." if times else none)
        return "\n".join(rows)

    def line_switched(self, record: ModelVersionRecord, rolled_back: bool) -> str:
        back = "Rolled back: " if rolled_back else ""
        line = self._code(record.line or "")
        return f"{back}{line}'s members now get {self._code(record.name)}."

    def line_allowed(self, record: ServerSettingsRecord) -> str:
        key = self._code(record.key)
        if not record.own_line:
            return f"{key} has no model line of its own now: the shared version serves it."
        shares = "also train" if record.line_shares else "stay out of"
        verbs = ", ".join(self.surface.code(f"line {verb}") for verb in LINE_VERBS)
        return (
            f"{key} has its own model line: its admins may {verbs}; its texts and ratings "
            f"{shares} the shared model."
        )

    # stats

    def stats(
        self,
        rows: list[VersionRatingStats],
        chart: Chart,
        experiment: ABReport | None,
        experiment_chart: Chart | None,
    ) -> AdminReply:
        """Ratings per version (with their chart), and the running or last experiment."""
        code = self.surface.code
        lines = ["No generations yet, so no ratings to compare."]
        charts = []
        if rows:
            lines = [code("version · generations · ratings · mean · 👍 share · raters")] + [
                f"{code(r.model_version)} · {r.generations} · {r.ratings} · {r.mean_score:+.2f}"
                f" · {r.positive_share:.0%} · {r.raters}"
                for r in rows
            ]
            charts.append(chart)
        if experiment is not None and experiment_chart is not None:
            lines += ["", self.experiment_text(experiment)]
            charts.append(experiment_chart)
        return AdminReply("\n".join(lines), tuple(charts))

    # A/B experiments

    def experiment_text(self, report: ABReport) -> str:
        """The experiment: head, both arms, the decision, the review."""
        hint = f" ({self.surface.example('review next')} shows the pair to judge)"
        return "\n".join(ab_text.experiment_lines(report, self._bold, self._code, hint))

    def experiment(self, report: ABReport, chart: Chart, intro: str = "") -> AdminReply | str:
        """`ab start|status|stop`: the experiment under `intro` (its chart left out here)."""
        return intro + self.experiment_text(report)

    def no_experiment(self) -> str:
        start = self.surface.example("ab start VERSION")
        return f"No A/B experiment has run yet: {start} starts one."

    # blind review

    def _clip(self, text: str, limit: int) -> str:
        text = text.strip()
        return self.surface.escape(text if len(text) <= limit else text[: limit - 1].rstrip() + "…")

    def _quote(self, text: str) -> str:
        body = self._clip(text, OUTPUT_CHARS) or "_(nothing: the model ended the text here)_"
        return "\n".join(f"> {line}" for line in body.splitlines())

    def blind_pair(self, item: BlindPair, command: str = "review") -> AdminReply | str:
        """`review next`: the prompt and both outputs as A and B, without version names."""
        bold, code = self.surface.bold, self.surface.code
        return "\n".join(
            [
                f"{bold(f'Blind review #{item.id}')}: which output is better? "
                f"({SOURCES.get(item.source, item.source)}; same seed and settings for both)",
                f"{bold('Prompt:')} {self._clip(item.prompt, PROMPT_CHARS)}",
                bold("A"),
                self._quote(item.output_a),
                bold("B"),
                self._quote(item.output_b),
                f"Vote: {self.surface.example(f'{command} vote {item.id} a')} (A is better), "
                f"{code(f'… {item.id} b')} (B is better) or {code(f'… {item.id} tie')}.",
            ]
        )

    def revealed(self, item: ReviewItemRecord, command: str = "review") -> AdminReply | str:
        """`review vote` (`command`: "line review" in a line): which version was A and which
        B, and the verdict."""
        sides = f"A was {self._code(item.version_a)}, B was {self._code(item.version_b)}"
        winner = item.winner
        verdict = "you called it a tie" if winner is None else f"you preferred {self._code(winner)}"
        return f"{sides}: {verdict}. Next: {self.surface.example(f'{command} next')}."

    def win_rates(self, rates: list[PairWinRate], command: str = "review") -> str:
        if not rates:
            next_ = self.surface.example(f"{command} next")
            return f"No blind-review verdicts yet: {next_} shows a pair to judge."
        code = self._code
        lines = [
            f"{self.surface.bold('Blind review win rates')} (a tie counts half a win for each)"
        ]
        for r in rates:
            first, second = code(r.first), code(r.second)
            lines.append(
                f"{first} vs {second}: {r.judged} judged · {first} {r.first_wins} won "
                f"({r.first_rate:.0%}) · {second} {r.second_wins} won ({r.second_rate:.0%}) · "
                f"{r.ties} tied"
            )
        return "\n".join(lines)

    # a server's settings and outputs

    def server_settings(self, record: ServerSettingsRecord, saved: bool) -> str:
        """The server's settings in one sentence (after "Saved." when they just changed)."""
        facts = settings_facts(record, roles=bool(record.admin_role_ids))
        said = "; ".join(f"{label}: {value}" for label, value in facts)
        return ("Saved.\n" if saved else "") + f"This {self.surface.server_noun}: {said}."

    def reported(self, rows: list[ReportedRecord]) -> str:
        noun = self.surface.server_noun
        if not rows:
            return f"No output of this {noun} is hidden by reports."
        how = f"{self.surface.example('server delete ID')} or {self.surface.code('server keep ID')}"
        lines = [f"{self.surface.bold('Hidden after 🚩 reports')} ({how})"]
        for row in rows:
            text = self.surface.escape(" ".join(row.output.split())[:PREVIEW_CHARS])
            code = self.surface.code(f"#{row.generation_id}")
            lines.append(f"{code} · {row.reports} report(s) · {text}")
        return "\n".join(lines)

    def kept(self, generation: int) -> str:
        return f"Generation #{generation} is shown again; its reports are cleared."

    def deleted(self, generation: int, message_left: bool) -> str:
        """`message_left`: the platform could not delete the output's message itself."""
        left = " Its message stays in the channel: delete it there." if message_left else ""
        return f"Generation #{generation} is deleted (text, ratings, training use).{left}"
