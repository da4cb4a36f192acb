"""Repositories: the only code that touches ORM objects. Every method runs in one transaction
and returns records (or plain values). Methods are blocking; async callers use `Database.run`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from storage.db import Database
from storage.models import AuditEntry, Conversation, Generation, ModelVersion, Rating, utcnow
from storage.records import (
    GenerationRecord,
    ModelVersionRecord,
    NewGeneration,
    RatingRecord,
    VersionRatingStats,
)

EXPORT_PAGE_SIZE = 500  # rows per query while exporting, so memory stays flat


class NotFound(LookupError):
    """The requested row does not exist."""


def _rating_record(row: Rating) -> RatingRecord:
    return RatingRecord(
        rater_id=row.rater_id,
        score=row.score,
        emoji=row.emoji,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _generation_record(row: Generation, ratings: Sequence[Rating] = ()) -> GenerationRecord:
    return GenerationRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        parent_id=row.parent_id,
        kind=row.kind,
        platform=row.platform,
        guild_id=row.guild_id,
        channel_id=row.channel_id,
        user_id=row.user_id,
        message_id=row.message_id,
        prompt=row.prompt,
        output=row.output,
        params=dict(row.params),
        seed=row.seed,
        sample_index=row.sample_index,
        model_version=row.model_version,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        latency_s=row.latency_s,
        prompt_truncated=row.prompt_truncated,
        created_at=row.created_at,
        ratings=[_rating_record(r) for r in ratings],
    )


def _version_record(row: ModelVersion) -> ModelVersionRecord:
    return ModelVersionRecord(
        name=row.name,
        parent=row.parent,
        path=row.path,
        base_model=row.base_model,
        training_run_id=row.training_run_id,
        metrics=dict(row.metrics or {}),
        status=row.status,
        created_at=row.created_at,
        activated_at=row.activated_at,
    )


def _ratings_by_generation(session: Session, ids: Sequence[int]) -> dict[int, list[Rating]]:
    grouped: dict[int, list[Rating]] = {i: [] for i in ids}
    if ids:
        query = select(Rating).where(Rating.generation_id.in_(ids)).order_by(Rating.id)
        for rating in session.scalars(query):
            grouped[rating.generation_id].append(rating)
    return grouped


def iter_generations(db: Database, query: Select[Any]) -> Iterator[GenerationRecord]:
    """The generations `query` selects, with ratings, oldest first, one page per transaction
    (exports stay flat in memory and never hold a long read transaction)."""
    last_id = 0
    while True:
        with db.session() as session:
            page_query = query.where(Generation.id > last_id).order_by(Generation.id)
            rows = list(session.scalars(page_query.limit(EXPORT_PAGE_SIZE)))
            ratings = _ratings_by_generation(session, [r.id for r in rows])
            page = [_generation_record(r, ratings[r.id]) for r in rows]
        if not page:
            return
        yield from page
        last_id = page[-1].id


class GenerationRepository:
    """Generations, their conversations and their ratings."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, new: NewGeneration) -> GenerationRecord:
        with self._db.session() as session:
            conversation_id = new.conversation_id
            if conversation_id is None:
                conversation = Conversation(
                    platform=new.platform, channel_id=new.channel_id, user_id=new.user_id
                )
                session.add(conversation)
                session.flush()
                conversation_id = conversation.id
            fields = {k: v for k, v in vars(new).items() if k != "conversation_id"}
            row = Generation(conversation_id=conversation_id, **fields)
            session.add(row)
            session.flush()
            return _generation_record(row)

    def get(self, generation_id: int) -> GenerationRecord:
        with self._db.session() as session:
            row = session.get(Generation, generation_id)
            if row is None:
                raise NotFound(f"generation {generation_id}")
            return _generation_record(row, _ratings_by_generation(session, [row.id])[row.id])

    def find_by_message(self, platform: str, message_id: str) -> GenerationRecord | None:
        with self._db.session() as session:
            query = select(Generation).where(
                Generation.platform == platform, Generation.message_id == message_id
            )
            row = session.scalars(query.limit(1)).first()
            if row is None:
                return None
            return _generation_record(row, _ratings_by_generation(session, [row.id])[row.id])

    def set_message_id(self, generation_id: int, message_id: str) -> None:
        with self._db.session() as session:
            row = session.get(Generation, generation_id)
            if row is None:
                raise NotFound(f"generation {generation_id}")
            row.message_id = message_id

    def conversation(self, conversation_id: int) -> list[GenerationRecord]:
        """Every generation of a conversation in the order it was made."""
        with self._db.session() as session:
            query = (
                select(Generation)
                .where(Generation.conversation_id == conversation_id)
                .order_by(Generation.id)
            )
            rows = list(session.scalars(query))
            ratings = _ratings_by_generation(session, [r.id for r in rows])
            return [_generation_record(r, ratings[r.id]) for r in rows]

    def iter_all(self) -> Iterator[GenerationRecord]:
        """Every generation with its ratings, oldest first, fetched page by page."""
        return iter_generations(self._db, select(Generation))

    def count(self) -> int:
        with self._db.session() as session:
            return session.scalar(select(func.count(Generation.id))) or 0

    def rate(self, generation_id: int, rater_id: str, score: int, emoji: str) -> RatingRecord:
        """Store `rater_id`'s rating, replacing the one they gave before."""
        with self._db.session() as session:
            if session.get(Generation, generation_id) is None:
                raise NotFound(f"generation {generation_id}")
            query = select(Rating).where(
                Rating.generation_id == generation_id, Rating.rater_id == rater_id
            )
            row = session.scalars(query).first()
            if row is None:
                row = Rating(
                    generation_id=generation_id, rater_id=rater_id, score=score, emoji=emoji
                )
                session.add(row)
            else:
                row.score, row.emoji, row.updated_at = score, emoji, utcnow()
            session.flush()
            return _rating_record(row)

    def unrate(self, generation_id: int, rater_id: str, emoji: str | None = None) -> bool:
        """Delete `rater_id`'s rating (only if it was given with `emoji`, when named)."""
        with self._db.session() as session:
            query = delete(Rating).where(
                Rating.generation_id == generation_id, Rating.rater_id == rater_id
            )
            if emoji is not None:
                query = query.where(Rating.emoji == emoji)
            return bool(session.execute(query).rowcount)  # type: ignore[attr-defined]

    def stats_by_version(self) -> list[VersionRatingStats]:
        """Ratings per model version: count, mean, share positive, distinct raters."""
        with self._db.session() as session:
            generated = dict(
                session.execute(
                    select(Generation.model_version, func.count(Generation.id)).group_by(
                        Generation.model_version
                    )
                ).all()
            )
            rated = session.execute(
                select(
                    Generation.model_version,
                    func.count(Rating.id),
                    func.avg(Rating.score),
                    func.count(func.distinct(Rating.rater_id)),
                )
                .join(Rating, Rating.generation_id == Generation.id)
                .group_by(Generation.model_version)
            ).all()
            positives = dict(
                session.execute(
                    select(Generation.model_version, func.count(Rating.id))
                    .join(Rating, Rating.generation_id == Generation.id)
                    .where(Rating.score > 0)
                    .group_by(Generation.model_version)
                ).all()
            )
        by_version = {row[0]: row for row in rated}
        stats = []
        for version, count in sorted(generated.items()):
            _, n, mean, raters = by_version.get(version, (version, 0, 0.0, 0))
            stats.append(
                VersionRatingStats(
                    model_version=version,
                    generations=count,
                    ratings=n,
                    mean_score=float(mean or 0.0),
                    positive_share=(positives.get(version, 0) / n) if n else 0.0,
                    raters=raters,
                )
            )
        return stats


class ModelVersionRepository:
    """Rows of the model-version registry; exactly one version is `active` at a time."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        name: str,
        path: str,
        base_model: str,
        parent: str | None = None,
        metrics: dict[str, Any] | None = None,
        training_run_id: int | None = None,
    ) -> ModelVersionRecord:
        with self._db.session() as session:
            row = ModelVersion(
                name=name,
                path=path,
                base_model=base_model,
                parent=parent,
                metrics=metrics or {},
                training_run_id=training_run_id,
                status="candidate",
            )
            session.add(row)
            session.flush()
            return _version_record(row)

    def list(self) -> list[ModelVersionRecord]:
        with self._db.session() as session:
            rows = session.scalars(select(ModelVersion).order_by(ModelVersion.id))
            return [_version_record(r) for r in rows]

    def get(self, name: str) -> ModelVersionRecord | None:
        with self._db.session() as session:
            row = session.scalars(select(ModelVersion).where(ModelVersion.name == name)).first()
            return None if row is None else _version_record(row)

    def active(self) -> ModelVersionRecord | None:
        with self._db.session() as session:
            query = select(ModelVersion).where(ModelVersion.status == "active")
            row = session.scalars(query).first()
            return None if row is None else _version_record(row)

    def activate(self, name: str) -> ModelVersionRecord:
        """Make `name` the active version and retire the one before, in one transaction."""
        with self._db.session() as session:
            target = session.scalars(select(ModelVersion).where(ModelVersion.name == name)).first()
            if target is None:
                raise NotFound(f"model version {name}")
            for row in session.scalars(select(ModelVersion).where(ModelVersion.status == "active")):
                if row.id != target.id:
                    row.status = "retired"
            target.status = "active"
            target.activated_at = utcnow()
            session.flush()
            return _version_record(target)

    def previous_active(self) -> ModelVersionRecord | None:
        """The most recently activated version other than the active one."""
        with self._db.session() as session:
            query = (
                select(ModelVersion)
                .where(ModelVersion.status != "active", ModelVersion.activated_at.is_not(None))
                .order_by(ModelVersion.activated_at.desc(), ModelVersion.id.desc())
            )
            row = session.scalars(query).first()
            return None if row is None else _version_record(row)

    def update_metrics(self, name: str, metrics: dict[str, Any]) -> None:
        with self._db.session() as session:
            row = session.scalars(select(ModelVersion).where(ModelVersion.name == name)).first()
            if row is None:
                raise NotFound(f"model version {name}")
            row.metrics = {**(row.metrics or {}), **metrics}


class AuditRepository:
    """The admin audit log: every admin attempt, allowed or not."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self, actor: str, platform: str, action: str, allowed: bool, detail: dict[str, Any]
    ) -> None:
        with self._db.session() as session:
            session.add(
                AuditEntry(
                    actor=actor, platform=platform, action=action, allowed=allowed, detail=detail
                )
            )

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._db.session() as session:
            query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
            return [
                {
                    "actor": r.actor,
                    "platform": r.platform,
                    "action": r.action,
                    "allowed": r.allowed,
                    "detail": dict(r.detail or {}),
                    "created_at": r.created_at,
                }
                for r in session.scalars(query)
            ]
