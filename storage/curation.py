"""Curated samples: the training texts, added by admins or derived from well-rated
generations.

Each text records the server it came from (`origin`). Training data is taken per model line:
a server's line trains on its own texts and ratings only; the shared line on the rest, leaving
out the servers that have a line of their own unless the owners let it share (`line_shares`).

Every method is one transaction returning records; async callers use `Database.run`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
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
from storage.rating_rule import RatingRow, RatingRule, passing
from storage.servers import server_key

ALL_LINES = "*"  # no line's selection: every text and rating (the rating sync, exports)


@dataclass(frozen=True)
class CuratedSampleRecord:
    id: int
    text: str
    source: str  # admin|rating
    added_by: str
    created_at: datetime
    active: bool
    generation_id: int | None = None  # set for samples that came from a rated generation
    status: str = "approved"  # pending|approved|rejected|lapsed (pending that stopped passing)
    why: dict[str, Any] | None = None  # rating ids, raters, counts and bound that brought it in
    reviewed_by: str | None = None  # who approved or rejected it ("auto": CURATION_AUTO_APPROVE)
    origin: str | None = None  # the server it came from ("discord:1234"); None: the owners


def _sample_record(row: CuratedSample) -> CuratedSampleRecord:
    return CuratedSampleRecord(
        id=row.id,
        text=row.text,
        source=row.source,
        added_by=row.added_by,
        created_at=row.created_at,
        active=row.active,
        generation_id=row.generation_id,
        status=row.status,
        why=row.why,
        reviewed_by=row.reviewed_by,
        origin=row.origin,
    )


def _closed_lines(session: Session) -> set[str]:
    """Servers with a line of their own whose data stays out of the shared line's training."""
    query = select(ServerSettings.platform, ServerSettings.server_id).where(
        ServerSettings.own_line.is_(True), ServerSettings.line_shares.is_(False)
    )
    return {server_key(platform, server_id) for platform, server_id in session.execute(query)}


def _origin_in(session: Session, line: str | None) -> ColumnElement[bool] | None:
    """Which samples `line` trains on (None: the shared line; `ALL_LINES`: no filter)."""
    if line == ALL_LINES:
        return None
    if line is not None:
        return CuratedSample.origin == line
    closed = _closed_lines(session)
    return CuratedSample.origin.is_(None) | CuratedSample.origin.not_in(closed or {""})


def _serves_line(key: str | None, line: str | None, closed: set[str]) -> bool:
    """Whether data from the server `key` (None: outside servers) may train `line`."""
    if line == ALL_LINES:
        return True
    return key == line if line is not None else key not in closed


def _kept_out(session: Session) -> set[int]:
    """Generations that must not become training data whatever their ratings: redacted ones,
    withheld by moderation or hidden by reports, those of members who deleted their data, and
    those of servers that opted out."""
    unfit = Generation.redacted.is_(True) | Generation.flagged.is_not(None)
    kept = set(session.scalars(select(Generation.id).where(unfit | Generation.hidden.is_(True))))
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

    def add_many(
        self, texts: list[str], added_by: str, source: str = "admin", origin: str | None = None
    ) -> list[int]:
        """`origin`: the server whose line the texts are for (None: the shared data)."""
        with self._db.session() as session:
            rows = [
                CuratedSample(text=t, source=source, added_by=added_by, origin=origin)
                for t in texts
            ]
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

    def active(self, line: str | None = ALL_LINES) -> list[CuratedSampleRecord]:
        """Every active sample `line` trains on, oldest first: the dataset a run trains on
        (None: the shared line's; the default: every line's)."""
        with self._db.session() as session:
            query = (
                select(CuratedSample)
                .where(CuratedSample.active.is_(True))
                .order_by(CuratedSample.id)
            )
            if (fits := _origin_in(session, line)) is not None:
                query = query.where(fits)
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

    def rating_rows(self, line: str | None = ALL_LINES) -> list[RatingRow]:
        """Every rating of a generation that may become training data (see `_kept_out`), of
        the servers whose data trains `line` (the default: every server's)."""
        with self._db.session() as session:
            kept_out, closed = _kept_out(session), _closed_lines(session)
            query = select(Rating, Generation.user_id, Generation.platform, Generation.guild_id)
            query = query.join(Generation, Generation.id == Rating.generation_id)
            return [
                RatingRow(
                    r.id, r.generation_id, author, r.rater_id, r.score, r.created_at, platform
                )
                for r, author, platform, guild in session.execute(query)
                if r.generation_id not in kept_out
                and _serves_line(guild and server_key(platform, guild), line, closed)
            ]

    def pairs_of(self, generation_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """The (prompt, output) of each generation: a preference row's prompt and completion."""
        with self._db.session() as session:
            query = select(Generation).where(Generation.id.in_(list(generation_ids)))
            return {g.id: (g.prompt, g.output) for g in session.scalars(query)}

    def last_rating(self) -> datetime | None:
        """When a rating was last given or changed (new 👎 call for a preference retrain)."""
        with self._db.session() as session:
            return session.scalar(select(func.max(Rating.updated_at)))

    def apply_ratings(
        self, passing: Mapping[int, Mapping[str, Any]], auto_approve: bool
    ) -> tuple[int, int]:
        """Make the rating-derived samples match `passing` (generation id -> why). New ones
        wait for review unless `auto_approve`; rejected and removed ones never come back.
        Returns (added to the dataset, dropped from it); queued ones count as neither."""
        with self._db.session() as session:
            existing = {
                row.generation_id: row
                for row in session.scalars(
                    select(CuratedSample).where(CuratedSample.source == "rating")
                )
            }
            added = removed = 0
            for gid, row in existing.items():
                if row.removed_by is not None or row.status == "rejected":
                    continue
                ok = gid is not None and gid in passing
                if ok and gid is not None:
                    row.why = {**(row.why or {}), **passing[gid]}
                if row.status in ("pending", "lapsed"):
                    row.status = "pending" if ok else "lapsed"
                    continue
                if row.active != ok:
                    row.active = ok
                    row.created_at = utcnow() if ok else row.created_at
                    added, removed = added + ok, removed + (not ok)
            new_ids = sorted(set(passing) - set(existing))
            if new_ids:
                query = select(Generation).where(Generation.id.in_(new_ids))
                for generation in session.scalars(query):
                    session.add(
                        CuratedSample(
                            text=generation.prompt + generation.output,
                            source="rating",
                            generation_id=generation.id,
                            added_by="ratings",
                            active=auto_approve,
                            status="approved" if auto_approve else "pending",
                            why=dict(passing[generation.id]),
                            reviewed_by="auto" if auto_approve else None,
                            origin=generation.guild_id
                            and server_key(generation.platform, generation.guild_id),
                        )
                    )
                    added += auto_approve
            return added, removed

    def sync_from_ratings(
        self, min_net_score: int, min_raters: int, rule: RatingRule | None = None
    ) -> tuple[int, int]:
        """Apply the rating rule without moderation, approving automatically (tests and
        tools; the service screens texts first: `admin.curation.Curation.sync_ratings`)."""
        rule = rule or RatingRule(min_net_score, min_raters, min_lower_bound=0, daily_cap=0)
        return self.apply_ratings(passing(self.rating_rows(), rule), auto_approve=True)

    def pending(self, limit: int = 20, line: str | None = ALL_LINES) -> list[CuratedSampleRecord]:
        """Rating-derived samples waiting for review, oldest first (of `line`'s data only,
        when given; the default: every line's)."""
        with self._db.session() as session:
            query = (
                select(CuratedSample)
                .where(CuratedSample.status == "pending")
                .order_by(CuratedSample.id)
                .limit(limit)
            )
            if (fits := _origin_in(session, line)) is not None:
                query = query.where(fits)
            return [_sample_record(r) for r in session.scalars(query)]

    def review(
        self, sample_id: int, reviewer: str, approve: bool, line: str | None = ALL_LINES
    ) -> CuratedSampleRecord:
        """Approve (into the dataset) or reject (for good) a pending sample (one of `line`'s
        own, when given: a line's admins review their server's samples only)."""
        with self._db.session() as session:
            row = session.get(CuratedSample, sample_id)
            foreign = line not in (ALL_LINES, None) and (row is None or row.origin != line)
            if row is None or row.status != "pending" or foreign:
                raise NotFound(f"pending curated sample {sample_id}")
            row.status = "approved" if approve else "rejected"
            row.active = approve
            row.reviewed_by, row.reviewed_at = reviewer, utcnow()
            row.created_at = utcnow() if approve else row.created_at
            if not approve:
                row.removed_by = reviewer
            session.flush()
            return _sample_record(row)
