"""Generations: conversations, the generations in them, their ratings, and ratings per
model version. Records are plain dataclasses; callers never see ORM objects.

Every method is one transaction; methods are blocking, async callers use `Database.run`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from storage.db import Database
from storage.errors import NotFound
from storage.models import Conversation, Generation, Rating, utcnow

EXPORT_PAGE_SIZE = 500  # rows per query while exporting, so memory stays flat


@dataclass(frozen=True)
class NewGeneration:
    """What a caller knows about a generation before it is stored."""

    platform: str
    user_id: str
    prompt: str
    output: str
    params: dict[str, Any]
    seed: int
    model_version: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    sample_index: int = 0
    prompt_truncated: bool = False
    guild_id: str | None = None
    channel_id: str | None = None
    message_id: str | None = None
    kind: str = "new"  # new|regenerate|continue|reply (a member's words added to the chain)
    parent_id: int | None = None
    conversation_id: int | None = None  # None starts a new conversation
    flagged: str | None = None  # why moderation withheld the output (never shown, never curated)
    experiment_id: int | None = None  # the A/B experiment it was served in
    arm: str | None = None  # control|candidate: which arm's version served it
    template: str | None = None  # the server's prompt template the prompt was made with


@dataclass(frozen=True)
class RatingRecord:
    rater_id: str
    score: int
    emoji: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class GenerationRecord:
    id: int
    conversation_id: int
    parent_id: int | None
    kind: str
    platform: str
    guild_id: str | None
    channel_id: str | None
    user_id: str
    message_id: str | None
    prompt: str
    output: str
    params: dict[str, Any]
    seed: int
    sample_index: int
    model_version: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    prompt_truncated: bool
    created_at: datetime
    ratings: list[RatingRecord] = field(default_factory=list)
    redacted: bool = False  # its author deleted their data: prompt and output are empty
    flagged: str | None = None  # why moderation withheld the output
    hidden: bool = False  # reported by enough members: waits for an admin
    experiment_id: int | None = None  # the A/B experiment it was served in
    arm: str | None = None  # control|candidate
    template: str | None = None  # the prompt template it was made with

    @property
    def withheld(self) -> bool:
        """Members must not see this output (flagged by moderation or hidden by reports)."""
        return self.flagged is not None or self.hidden

    @property
    def net_score(self) -> int:
        return sum(rating.score for rating in self.ratings)


@dataclass(frozen=True)
class VersionRatingStats:
    """Ratings of one model version, over the period it served."""

    model_version: str
    generations: int
    ratings: int
    mean_score: float
    positive_share: float
    raters: int


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
        redacted=row.redacted,
        flagged=row.flagged,
        hidden=bool(row.hidden),
        experiment_id=row.experiment_id,
        arm=row.arm,
        template=row.template,
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

    def in_channel(self, platform: str, channel_id: str) -> tuple[int, GenerationRecord | None]:
        """How many generations were made in a channel (a story thread), and the newest one
        members may see (not withheld by moderation, not hidden by reports)."""
        with self._db.session() as session:
            where = (Generation.platform == platform, Generation.channel_id == channel_id)
            count = session.scalar(select(func.count(Generation.id)).where(*where)) or 0
            shown = (Generation.flagged.is_(None), Generation.hidden.is_(False))
            row = session.scalars(
                select(Generation).where(*where, *shown).order_by(Generation.id.desc()).limit(1)
            ).first()
            if row is None:
                return count, None
            return count, _generation_record(row, _ratings_by_generation(session, [row.id])[row.id])

    def recent_by_user(self, platform: str, user_id: str, limit: int) -> list[GenerationRecord]:
        """A member's newest generations first."""
        with self._db.session() as session:
            query = (
                select(Generation)
                .where(Generation.platform == platform, Generation.user_id == user_id)
                .order_by(Generation.id.desc())
                .limit(limit)
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
