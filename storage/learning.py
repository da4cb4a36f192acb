"""Repositories of the learning loop: curated samples and training runs.

Like `storage.repository`, every method is one transaction returning records; callers on the
event loop go through `Database.run`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select

from storage.db import Database
from storage.models import CuratedSample, Generation, Rating, TrainingRun, utcnow
from storage.repository import NotFound


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SKIPPED)


@dataclass(frozen=True)
class CuratedSampleRecord:
    id: int
    text: str
    source: str  # admin|rating
    added_by: str
    created_at: datetime
    active: bool
    generation_id: int | None = None  # set for samples that came from a rated generation


@dataclass(frozen=True)
class TrainingRunRecord:
    id: int
    trigger: str
    requested_by: str
    status: str
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
    eta_s: float | None = None  # live estimate while training (not stored)

    @property
    def promoted(self) -> bool | None:
        return self.eval_after.get("promoted")


def _sample_record(row: CuratedSample) -> CuratedSampleRecord:
    return CuratedSampleRecord(
        id=row.id,
        text=row.text,
        source=row.source,
        added_by=row.added_by,
        created_at=row.created_at,
        active=row.active,
        generation_id=row.generation_id,
    )


def _run_record(row: TrainingRun) -> TrainingRunRecord:
    return TrainingRunRecord(
        id=row.id,
        trigger=row.trigger,
        requested_by=row.requested_by,
        status=row.status,
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
    )


class CuratedSampleRepository:
    """Training texts: added by admins, or derived from well-rated generations."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_many(self, texts: list[str], added_by: str, source: str = "admin") -> list[int]:
        with self._db.session() as session:
            rows = [CuratedSample(text=t, source=source, added_by=added_by) for t in texts]
            session.add_all(rows)
            session.flush()
            return [r.id for r in rows]

    def active_texts(self) -> list[str]:
        with self._db.session() as session:
            query = select(CuratedSample.text).where(CuratedSample.active.is_(True))
            return list(session.scalars(query))

    def recent(self, limit: int = 20, active_only: bool = True) -> list[CuratedSampleRecord]:
        with self._db.session() as session:
            query = select(CuratedSample).order_by(CuratedSample.id.desc()).limit(limit)
            if active_only:
                query = query.where(CuratedSample.active.is_(True))
            return [_sample_record(r) for r in session.scalars(query)]

    def active(self) -> list[CuratedSampleRecord]:
        """Every active sample, oldest first: the dataset a run trains on."""
        with self._db.session() as session:
            query = (
                select(CuratedSample)
                .where(CuratedSample.active.is_(True))
                .order_by(CuratedSample.id)
            )
            return [_sample_record(r) for r in session.scalars(query)]

    def deactivate(self, sample_id: int, removed_by: str) -> None:
        """Remove a sample from the dataset for good (ratings do not bring it back)."""
        with self._db.session() as session:
            row = session.get(CuratedSample, sample_id)
            if row is None or not row.active:
                raise NotFound(f"curated sample {sample_id}")
            row.active, row.removed_by = False, removed_by

    def last_change(self) -> datetime | None:
        """When the dataset last gained a sample (removals do not call for a retrain)."""
        with self._db.session() as session:
            return session.scalar(
                select(func.max(CuratedSample.created_at)).where(CuratedSample.active.is_(True))
            )

    def sync_from_ratings(self, min_net_score: int, min_raters: int) -> tuple[int, int]:
        """Include generations whose ratings pass the threshold as "prompt + output"; drop
        those whose ratings no longer do. Returns (added, removed)."""
        with self._db.session() as session:
            totals: dict[int, list[int]] = defaultdict(list)
            for generation_id, score in session.execute(select(Rating.generation_id, Rating.score)):
                totals[generation_id].append(score)
            passing = {
                gid
                for gid, scores in totals.items()
                if sum(scores) >= min_net_score and len(scores) >= min_raters
            }
            existing = {
                row.generation_id: row
                for row in session.scalars(
                    select(CuratedSample).where(CuratedSample.source == "rating")
                )
            }
            added = removed = 0
            for gid, row in existing.items():
                should = gid in passing and row.removed_by is None
                if row.active != should:
                    row.active = should
                    row.created_at = utcnow() if should else row.created_at
                    added, removed = added + should, removed + (not should)
            new_ids = sorted(passing - set(existing))
            if new_ids:
                query = select(Generation).where(Generation.id.in_(new_ids))
                for generation in session.scalars(query):
                    session.add(
                        CuratedSample(
                            text=generation.prompt + generation.output,
                            source="rating",
                            generation_id=generation.id,
                            added_by="ratings",
                        )
                    )
                    added += 1
            return added, removed


class TrainingRunRepository:
    """Training runs: status, dataset snapshot, per-step losses, evaluation."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, trigger: str, requested_by: str, status: str = "queued") -> TrainingRunRecord:
        with self._db.session() as session:
            row = TrainingRun(trigger=trigger, requested_by=requested_by, status=status)
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

    def running(self) -> list[TrainingRunRecord]:
        with self._db.session() as session:
            query = select(TrainingRun).where(TrainingRun.status.in_(ACTIVE_STATUSES))
            return [_run_record(r) for r in session.scalars(query)]

    def last_trained(self) -> TrainingRunRecord | None:
        """The most recent run that trained (succeeded), to tell whether data is new."""
        with self._db.session() as session:
            query = (
                select(TrainingRun)
                .where(TrainingRun.status == "succeeded")
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
