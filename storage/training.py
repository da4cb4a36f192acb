"""Training runs: status, dataset snapshot, per-step losses and evaluation.

Every method is one transaction returning records; async callers use `Database.run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from storage.db import Database
from storage.errors import NotFound
from storage.models import TrainingRun, utcnow


class RunStatus(StrEnum):
    """Where a training run stands; stored as its value, a plain string."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # a scheduled run found nothing new to train on


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)  # every other status is final
FINISHED_STATUSES = tuple(status for status in RunStatus if status not in ACTIVE_STATUSES)


@dataclass(frozen=True)
class TrainingRunRecord:
    id: int
    trigger: str  # manual|schedule
    requested_by: str
    status: RunStatus
    dataset_size: int
    dataset_snapshot: list[Any]
    loss_log: list[Any]
    progress: float
    eval_before: dict[str, Any]
    eval_after: dict[str, Any]
    model_version: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    eta_s: float | None = None  # a live estimate from the running process, never stored
    line: str | None = None  # the model line it trained (None: the shared line)

    @property
    def promoted(self) -> bool | None:
        """Whether the run's model was promoted; None until the run has been evaluated."""
        return self.eval_after.get("promoted")


@dataclass(frozen=True)
class TrainingRunSummary:
    """A training run as dashboards show it, with its per-step loss log."""

    id: int
    trigger: str
    requested_by: str
    status: RunStatus
    progress: float
    dataset_size: int
    model_version: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    loss_log: list[Any] = field(default_factory=list)
    eval_before: dict[str, Any] = field(default_factory=dict)
    eval_after: dict[str, Any] = field(default_factory=dict)


def _run_record(row: TrainingRun) -> TrainingRunRecord:
    return TrainingRunRecord(
        id=row.id,
        trigger=row.trigger,
        requested_by=row.requested_by,
        status=RunStatus(row.status),
        dataset_size=row.dataset_size,
        dataset_snapshot=list(row.dataset_snapshot or []),
        loss_log=list(row.loss_log or []),
        progress=row.progress,
        eval_before=dict(row.eval_before or {}),
        eval_after=dict(row.eval_after or {}),
        model_version=row.model_version,
        error=row.error,
        created_at=row.created_at,
        finished_at=row.finished_at,
        line=row.line,
    )


def _summary_record(row: TrainingRun) -> TrainingRunSummary:
    return TrainingRunSummary(
        id=row.id,
        trigger=row.trigger,
        requested_by=row.requested_by,
        status=RunStatus(row.status),
        progress=float(row.progress or 0.0),
        dataset_size=row.dataset_size or 0,
        model_version=row.model_version,
        error=row.error,
        created_at=row.created_at,
        finished_at=row.finished_at,
        loss_log=list(row.loss_log or []),
        eval_before=dict(row.eval_before or {}),
        eval_after=dict(row.eval_after or {}),
    )


class TrainingRunRepository:
    """Training runs: status, dataset snapshot, per-step losses, evaluation."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        trigger: str,
        requested_by: str,
        status: str = RunStatus.QUEUED,
        line: str | None = None,
    ) -> TrainingRunRecord:
        with self._db.session() as session:
            row = TrainingRun(trigger=trigger, requested_by=requested_by, status=status, line=line)
            session.add(row)
            session.flush()
            return _run_record(row)

    def get(self, run_id: int) -> TrainingRunRecord:
        with self._db.session() as session:
            row = session.get(TrainingRun, run_id)
            if row is None:
                raise NotFound(f"training run {run_id}")
            return _run_record(row)

    def latest(self) -> TrainingRunRecord | None:
        with self._db.session() as session:
            row = session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc())).first()
            return None if row is None else _run_record(row)

    def summaries(self, limit: int = 10) -> list[TrainingRunSummary]:
        """The most recent runs with their loss logs, newest first (for dashboards)."""
        with self._db.session() as session:
            query = select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit)
            return [_summary_record(r) for r in session.scalars(query)]

    def running(self) -> list[TrainingRunRecord]:
        with self._db.session() as session:
            query = select(TrainingRun).where(TrainingRun.status.in_(ACTIVE_STATUSES))
            return [_run_record(r) for r in session.scalars(query)]

    def last_trained(self, line: str | None = None) -> TrainingRunRecord | None:
        """The most recent run of `line` (None: the shared line) that trained (succeeded), to
        tell whether its data is new."""
        in_line = TrainingRun.line.is_(None) if line is None else TrainingRun.line == line
        with self._db.session() as session:
            query = (
                select(TrainingRun)
                .where(TrainingRun.status == RunStatus.SUCCEEDED, in_line)
                .order_by(TrainingRun.id.desc())
            )
            row = session.scalars(query).first()
            return None if row is None else _run_record(row)

    def update(self, run_id: int, **fields: Any) -> TrainingRunRecord:
        """Set columns of a run; `status` in a final state also stamps `finished_at`."""
        with self._db.session() as session:
            row = session.get(TrainingRun, run_id)
            if row is None:
                raise NotFound(f"training run {run_id}")
            for name, value in fields.items():
                setattr(row, name, value)
            if fields.get("status") not in (None, *ACTIVE_STATUSES):
                row.finished_at = utcnow()
            session.flush()
            return _run_record(row)

    def append_losses(self, run_id: int, entries: list[dict[str, Any]], progress: float) -> None:
        with self._db.session() as session:
            row = session.get(TrainingRun, run_id)
            if row is None:
                raise NotFound(f"training run {run_id}")
            row.loss_log = [*(row.loss_log or []), *entries]  # reassign so JSON change is seen
            row.progress = progress
