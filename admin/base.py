"""The admin seam: what platforms (Discord `/admin`, Slack `/gpt2bot-admin`, the web
dashboard, the CLI) call. Authorization happens before, in `admin.auth.AdminGate`.

The learning-loop implementation lives beside this file; platforms depend only on this
Protocol and the records below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from storage import CuratedSampleRecord as CuratedItem  # what curate_list returns
from storage import ModelVersionRecord, VersionRatingStats


@dataclass(frozen=True)
class CurationReport:
    """What an add did: "added 120, skipped 3 duplicates, 1 too long"."""

    added: int
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count

    def summary(self) -> str:
        parts = [f"added {self.added}"] + [f"skipped {n} {why}" for why, n in self.skipped.items()]
        return ", ".join(parts)


@dataclass(frozen=True)
class TrainingRunInfo:
    id: int
    status: str  # queued|running|succeeded|failed|cancelled|skipped
    trigger: str  # manual|schedule
    requested_by: str
    progress: float  # 0..1
    eta_s: float | None
    dataset_size: int
    model_version: str | None
    promoted: bool | None
    eval_before: dict[str, Any]
    eval_after: dict[str, Any]
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class AlreadyRunning(Exception):
    """A training run is in progress; the message says how far it is."""


class PromotionRefused(Exception):
    """The gate refused a promotion; the message says why and how to force it."""


ProgressCallback = Callable[[TrainingRunInfo], Any]


class AdminService(Protocol):
    """Admin use-cases. `actor` is the id recorded with what they did."""

    async def curate_add(self, actor: str, texts: list[str]) -> CurationReport:
        """Clean and add samples (one text each); report what was skipped and why."""
        ...

    async def curate_add_file(self, actor: str, filename: str, content: bytes) -> CurationReport:
        """Add samples from a `.txt` (one per line) or `.jsonl` (a `text` field) file."""
        ...

    async def curate_list(self, limit: int = 20) -> list[CuratedItem]:
        """Most recent active samples, admin-added and rating-derived."""
        ...

    async def curate_remove(self, actor: str, sample_id: int) -> None:
        """Deactivate a sample; raises `LookupError` if there is none with that id."""
        ...

    async def retrain_now(
        self, actor: str, progress: ProgressCallback | None = None
    ) -> TrainingRunInfo:
        """Start a training run in the background and return at once; `AlreadyRunning` if one
        is in progress. `progress` is called (on the event loop) as the run advances and ends."""
        ...

    async def retrain_status(self) -> TrainingRunInfo | None:
        """The running or most recent run."""
        ...

    async def retrain_cancel(self, actor: str) -> bool:
        """Cancel the running run; False when none is running."""
        ...

    async def retrain_schedule(self, actor: str, cron: str | None) -> list[datetime]:
        """Set (or with None, clear) the retrain schedule; returns the next three run times.
        Raises `ValueError` with a clear message for invalid or absurd schedules."""
        ...

    async def models_list(self) -> list[ModelVersionRecord]: ...

    async def model_use(self, actor: str, version: str, force: bool = False) -> ModelVersionRecord:
        """Promote `version` and hot-swap it in; refused when its held-out loss is worse than
        the active one's unless `force`."""
        ...

    async def model_rollback(self, actor: str) -> ModelVersionRecord:
        """Return to the previously active version (hot-swapped)."""
        ...

    async def stats(self) -> list[VersionRatingStats]:
        """Ratings per model version: the A/B view."""
        ...

    async def stats_chart(self) -> bytes:
        """The same as a PNG chart."""
        ...

    async def loss_curve(self, run_id: int | None = None) -> bytes:
        """A training run's loss curve as a PNG (default: the latest run)."""
        ...

    async def close(self) -> None:
        """Stop the schedule and any training (an interrupted run resumes at the next start)."""
        ...
