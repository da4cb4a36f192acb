"""The admin seams: what platforms (Discord `/admin`, Slack `/gpt2bot-admin`, the web
dashboard) and the CLI call. Authorization happens before, in `admin.auth.AdminGate`.

One small Protocol per concept: curation, training, registry, reports, experiments, reviews
(all global: bot owners) and servers (per-server settings: each server's admins). `App` holds
one of each in `AdminServices`; the implementations live beside this file (`curation.py`,
`training.py`, `registry.py`, `reports.py`, `experiments.py`, `review.py`, `servers.py`), their
test double in `admin/fake.py` (`scripted_admin(answers)`: the test says what each call
answers). What they answer with, beside the storage records, is in `admin/results.py`.

What a use-case refuses, it refuses with an `AdminError` (`admin/errors.py`): a sentence for
the person who asked, which every platform shows as is.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from admin.fleet_view import FleetView
from admin.line_seam import LineService, NoLines
from admin.results import (
    Assignment,
    BlindPair,
    CurationReport,
    ExperimentStatus,
    ProgressCallback,
)
from storage import (
    CuratedSampleRecord,
    ModelVersionRecord,
    PairWinRate,
    ReportedRecord,
    ReviewItemRecord,
    ServerSettingsRecord,
    TrainingRunRecord,
    VersionRatingStats,
)


class CurationService(Protocol):
    """The curated training data. `actor` is the id recorded with what they did."""

    async def add(self, actor: str, texts: list[str]) -> CurationReport:
        """Clean and add samples (one text each); report what was skipped and why."""
        ...

    async def add_file(self, actor: str, filename: str, content: bytes) -> CurationReport:
        """Add samples from a `.txt` (one per line) or `.jsonl` (a `text` field) file."""
        ...

    async def recent(self, limit: int = 20) -> list[CuratedSampleRecord]:
        """Most recent active samples, admin-added and rating-derived."""
        ...

    async def remove(self, actor: str, sample_id: int) -> None:
        """Deactivate a sample; raises `Unknown` if there is none with that id."""
        ...

    async def pending(self, limit: int = 20) -> list[CuratedSampleRecord]:
        """The review queue: rating-derived samples waiting for an admin, oldest first."""
        ...

    async def review(self, actor: str, sample_id: int, approve: bool) -> CuratedSampleRecord:
        """Approve (into the dataset) or reject (for good) a queued sample; `Unknown`
        when no sample with that id is waiting."""
        ...


class TrainingService(Protocol):
    """Fine-tuning runs: now, on a schedule, cancelled, resumed after a crash."""

    async def start(
        self,
        actor: str,
        progress: ProgressCallback | None = None,
        *,
        include_ratings: bool = True,
        epochs: int | None = None,
    ) -> TrainingRunRecord:
        """Start a training run in the background and return at once; `AlreadyRunning` if one
        is in progress. `progress` is called (on the event loop) as the run advances and ends.
        An interrupted run (crash, restart) is resumed instead of starting a new one."""
        ...

    async def status(self) -> TrainingRunRecord | None:
        """The running or most recent run."""
        ...

    async def wait(self) -> TrainingRunRecord | None:
        """Wait for the run this process started to end; its final state."""
        ...

    async def cancel(self, actor: str) -> bool:
        """Cancel the running run; False when none is running."""
        ...

    async def schedule(self, actor: str, cron: str | None) -> list[datetime]:
        """Set (or with None, clear) the retrain schedule; returns the next three run times.
        Raises `Invalid` with a clear message for invalid or absurd schedules. (A server
        line's own schedule: admin/lines.py.)"""
        ...

    async def start_background(self) -> None:
        """For a long-running bot: resume an interrupted run and start the schedule."""
        ...

    async def close(self) -> None:
        """Stop the schedule and any training (an interrupted run resumes at the next start)."""
        ...


class RegistryService(Protocol):
    """Model versions: which one serves, promotion through the gate, rollback."""

    async def versions(self) -> list[ModelVersionRecord]:
        """Every registered version, oldest first."""
        ...

    async def use(self, actor: str, version: str, force: bool = False) -> ModelVersionRecord:
        """Promote `version` and hot-swap it in; `PromotionRefused` when its held-out loss is
        worse than the active one's unless `force`; `Unknown` for an unknown name."""
        ...

    async def rollback(self, actor: str) -> ModelVersionRecord:
        """Return to the previously active version (hot-swapped); `Unknown` when there was
        none before."""
        ...

    async def remove(self, actor: str, version: str) -> ModelVersionRecord:
        """Delete a version (row and folder); `Invalid` for the active one, the A/B candidate
        and a base that adapter versions load over; `Unknown` for an unknown name."""
        ...

    async def follow(self, avoid: Collection[str] = ()) -> ModelVersionRecord | None:
        """Serve the version the database names active when this process serves another
        (changed by another process or command): the backend's hot-swap, running requests
        finish on the old version. Nothing is swapped for a name in `avoid` (it failed here
        lately). The active row (None before the first); `FollowFailed` when it cannot load."""
        ...


class ReportService(Protocol):
    """What the ratings and training runs say, as numbers and charts."""

    async def stats(self) -> list[VersionRatingStats]:
        """Ratings per model version (each version's own period, prompts and raters)."""
        ...

    async def stats_chart(self) -> bytes:
        """The same as a PNG chart."""
        ...

    async def loss_curve(self, run_id: int | None = None) -> bytes:
        """A training run's loss curve as a PNG (default: the latest run); `Unknown`
        when there is none."""
        ...


class ExperimentService(Protocol):
    """A/B experiments: a line's active version (control) against a candidate on live ratings.
    One runs per line (`line`: None for the shared line, else a server's key, whose members
    alone it splits); it survives restarts; every start, stop and decision is audited."""

    async def start(
        self, actor: str, version: str, share: float | None = None, line: str | None = None
    ) -> ExperimentStatus:
        """Serve `version` (of `line`) to a `share` of members beside the line's active version
        (loaded resident when this process serves). `Unknown` for an unknown version;
        `ExperimentRefused` for the active version, another line's version, a second
        experiment in the line, a share outside (0, 1) or a backend that keeps one version."""
        ...

    async def status(self, line: str | None = None) -> ExperimentStatus | None:
        """The line's running experiment, else its latest; None when it never had one."""
        ...

    async def stop(self, actor: str, line: str | None = None) -> ExperimentStatus:
        """End the line's running experiment undecided; `ExperimentRefused` when none runs."""
        ...

    async def candidate(self) -> str | None:
        """The shared running experiment's candidate version (kept resident), or None."""
        ...

    async def arm_for(
        self, platform: str, user_id: str, line: str | None = None
    ) -> Assignment | None:
        """The member's arm of the experiment running in `line` (sticky: a hash of platform
        and user id), None when none runs there."""
        ...

    async def evaluate(self, experiment_id: int | None = None) -> ExperimentStatus | None:
        """Apply the rule now (after a rating): promote, retire or end undecided when it is
        confident or at the maximum sample. None when no experiment (or not that one) runs."""
        ...

    async def resume(self) -> None:
        """At start-up of a serving process: load a running experiment's candidate again."""
        ...

    async def follow(self) -> str | None:
        """Read the running experiments now and load their candidates here (or unload those
        of experiments that ended); the shared one's candidate, or None."""
        ...

    async def close(self) -> None:
        """Stop background work (loading or unloading a candidate)."""
        ...


class FleetService(Protocol):
    """The `gpt2bot run` processes on this database and whether they serve what it says."""

    async def view(self) -> FleetView:
        """The database's choice (active version, A/B candidate) and the live processes."""
        ...

    async def wait(self, timeout_s: float) -> FleetView:
        """Until every live process serves the database's choice, or `timeout_s` passed:
        the last view (its `behind` names who did not follow, and their `problem`)."""
        ...


class ServerService(Protocol):
    """One server's own settings (Discord guild, Slack workspace), set by its admins."""

    async def get(self, platform: str, server_id: str) -> ServerSettingsRecord:
        """The server's settings (the defaults when it never changed any)."""
        ...

    async def reported(self, platform: str, server_id: str) -> list[ReportedRecord]:
        """The outputs of this server hidden by members' 🚩 reports, waiting for review."""
        ...

    async def keep_reported(
        self, actor: str, platform: str, server_id: str, generation_id: int
    ) -> None:
        """Let a reported output stand (shown again, reports cleared); `Unknown` when
        the server has no such generation."""
        ...

    async def delete_generation(
        self, actor: str, platform: str, server_id: str, generation_id: int
    ) -> tuple[str | None, str | None]:
        """Remove a generation made in this server: its text, ratings and training samples.
        Returns its (channel id, message id); `Unknown` when the server has none such."""
        ...

    async def update(
        self, actor: str, platform: str, server_id: str, **changes: Any
    ) -> ServerSettingsRecord:
        """Change some of: allowed_channels, admin_role_ids, cooldown_s, defaults,
        max_new_tokens_cap, samples_cap, ratings_train, blocklist, templates (by place: ""
        the whole server, else a channel id; the whole dict is replaced). `Invalid` (a
        sentence) for a bad value; nothing is changed then."""
        ...


class ReviewService(Protocol):
    """Blind side-by-side review of two model versions by the bot's owners; `line`: of a
    server line's versions, on that server's prompts (its admins, through admin/lines.py)."""

    async def next_item(
        self,
        actor: str,
        version_a: str | None = None,
        version_b: str | None = None,
        *,
        same_pair_as: int | None = None,
        line: str | None = None,
    ) -> BlindPair:
        """A prompt (a fixed evaluation prompt or a member's recent one) and the outputs of two
        versions for it, made with the same seed and sampling, in random order. Default pair:
        the active version against the A/B candidate (else the newest other version); one
        version named: it against the active one; `same_pair_as`: the pair of that item.
        An item shown to `actor` and not judged comes back until it is judged (reloading does
        not skip it). `ReviewUnavailable` with one version or a backend that cannot serve
        two; `Unknown` for an unknown version or item; `BackendError` when generation
        failed."""
        ...

    async def record(
        self, actor: str, item_id: int, choice: str, line: str | None = None
    ) -> ReviewItemRecord:
        """Store `actor`'s verdict, "a", "b" or "tie", and return the item with its versions
        revealed. `Unknown` for an unknown item (with `line`: one not of the line's versions);
        `Invalid` for another choice or an item judged already."""
        ...

    async def win_rates(self, line: str | None = None) -> list[PairWinRate]:
        """Wins, losses and ties per pair of versions (a tie counts half in the rates); with
        `line`, the pairs of that line's versions only."""
        ...


@dataclass(frozen=True)
class AdminServices:
    """The admin use-cases, one per concept, built together by the composition root."""

    curation: CurationService
    training: TrainingService
    registry: RegistryService
    reports: ReportService
    servers: ServerService
    experiments: ExperimentService
    reviews: ReviewService
    fleet: FleetService
    lines: LineService = field(default_factory=NoLines)

    async def close(self) -> None:
        await self.experiments.close()
        await self.training.close()
