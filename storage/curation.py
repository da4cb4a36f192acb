"""Curated samples: the training texts, added by admins or derived from well-rated
generations.

Every method is one transaction returning records; async callers use `Database.run`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.db import Database
from storage.errors import NotFound
from storage.models import (
    CuratedSample,
    DataDeletion,
    Generation,
    Rating,
    ServerSettings,
    utcnow,
)


@dataclass(frozen=True)
class CuratedSampleRecord:
    id: int
    text: str
    source: str  # admin|rating
    added_by: str
    created_at: datetime
    active: bool
    generation_id: int | None = None  # set for samples that came from a rated generation


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


def _kept_out(session: Session) -> set[int]:
    """Generations that must not become training data whatever their ratings: redacted ones,
    those of members who deleted their data, and those of servers that opted out."""
    kept = set(session.scalars(select(Generation.id).where(Generation.redacted.is_(True))))
    deleted = select(DataDeletion.platform, DataDeletion.user_id)
    for platform, user_id in session.execute(deleted):
        query = select(Generation.id).where(
            Generation.platform == platform, Generation.user_id == user_id
        )
        kept.update(session.scalars(query))
    opted_out = select(ServerSettings.platform, ServerSettings.server_id).where(
        ServerSettings.ratings_train.is_(False)
    )
    for platform, server_id in session.execute(opted_out):
        query = select(Generation.id).where(
            Generation.platform == platform, Generation.guild_id == server_id
        )
        kept.update(session.scalars(query))
    return kept


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
            } - _kept_out(session)
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
