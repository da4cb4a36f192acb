"""Blind side-by-side review: items (one prompt, two versions' outputs shown as "A" and "B"),
owners' verdicts on them, and the win rate of each pair of versions.

A verdict is stored twice over on purpose: as the side chosen (`a|b|tie`, what the owner saw)
and as the version that won (`winner`, None for a tie), so the win rates never depend on
remembering which side a version was shown on.

Win rates are per *unordered* pair of versions, named in alphabetical order; each version's
rate counts a tie as half a win: (wins + ties / 2) / judged. The ties are reported apart too,
so a reader can leave them out.

Every method is one transaction; methods are blocking, async callers use `Database.run`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from storage.db import Database
from storage.errors import NotFound
from storage.models import DataDeletion, Generation, Report, ReviewItem, utcnow

VERDICTS = ("a", "b", "tie")
SOURCES = ("fixed", "recent")
EXPORT_PAGE_SIZE = 500


@dataclass(frozen=True)
class NewReviewItem:
    """An item before it is stored; `version_a`/`output_a` are what is shown as "A"."""

    prompt: str
    source: str  # fixed|recent
    version_a: str
    version_b: str
    output_a: str
    output_b: str
    params: dict[str, Any]
    seed: int
    created_by: str
    generation_id: int | None = None  # where a recent prompt came from


@dataclass(frozen=True)
class ReviewItemRecord:
    id: int
    prompt: str
    source: str
    generation_id: int | None
    version_a: str
    version_b: str
    output_a: str
    output_b: str
    params: dict[str, Any]
    seed: int
    created_by: str
    created_at: datetime
    verdict: str | None  # a|b|tie; None while it waits
    winner: str | None  # the version judged better; None for a tie (or while it waits)
    reviewer: str | None
    decided_at: datetime | None
    redacted: bool = False

    @property
    def pair(self) -> tuple[str, str]:
        """The two versions in alphabetical order (the pair's name in win rates)."""
        low, high = sorted((self.version_a, self.version_b))
        return low, high


@dataclass(frozen=True)
class PairWinRate:
    """Verdicts on one pair of versions (`first` < `second` alphabetically)."""

    first: str
    second: str
    first_wins: int
    second_wins: int
    ties: int

    @property
    def judged(self) -> int:
        return self.first_wins + self.second_wins + self.ties

    @property
    def first_rate(self) -> float:
        """`first`'s share of the verdicts, a tie counting half."""
        return (self.first_wins + self.ties / 2) / self.judged if self.judged else 0.0

    @property
    def second_rate(self) -> float:
        return (self.second_wins + self.ties / 2) / self.judged if self.judged else 0.0


@dataclass(frozen=True)
class RecentPrompt:
    generation_id: int
    prompt: str


def _record(row: ReviewItem) -> ReviewItemRecord:
    return ReviewItemRecord(
        id=row.id,
        prompt=row.prompt,
        source=row.source,
        generation_id=row.generation_id,
        version_a=row.version_a,
        version_b=row.version_b,
        output_a=row.output_a,
        output_b=row.output_b,
        params=dict(row.params),
        seed=row.seed,
        created_by=row.created_by,
        created_at=row.created_at,
        verdict=row.verdict,
        winner=row.winner,
        reviewer=row.reviewer,
        decided_at=row.decided_at,
        redacted=bool(row.redacted),
    )


def redact_reviews(session: Session, generation_ids: Sequence[int]) -> None:
    """Blank the items whose prompt came from these generations (their author deleted them);
    the verdicts stay, so the win rates do not change."""
    if not generation_ids:
        return
    session.execute(
        update(ReviewItem)
        .where(ReviewItem.generation_id.in_(generation_ids))
        .values(prompt="", output_a="", output_b="", redacted=True)
    )


class ReviewRepository:
    """Review items and their verdicts."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, new: NewReviewItem) -> ReviewItemRecord:
        if new.source not in SOURCES:
            raise ValueError(f"a review prompt's source is one of {', '.join(SOURCES)}")
        with self._db.session() as session:
            row = ReviewItem(**vars(new))
            session.add(row)
            session.flush()
            return _record(row)

    def get(self, item_id: int) -> ReviewItemRecord:
        with self._db.session() as session:
            row = session.get(ReviewItem, item_id)
            if row is None:
                raise NotFound(f"review item {item_id}")
            return _record(row)

    def waiting(self, created_by: str, pair: tuple[str, str]) -> ReviewItemRecord | None:
        """The newest item of this pair (either order) shown to `created_by` and not judged."""
        first, second = pair
        query = (
            select(ReviewItem)
            .where(
                ReviewItem.created_by == created_by,
                ReviewItem.verdict.is_(None),
                ReviewItem.redacted.is_(False),
                ((ReviewItem.version_a == first) & (ReviewItem.version_b == second))
                | ((ReviewItem.version_a == second) & (ReviewItem.version_b == first)),
            )
            .order_by(ReviewItem.id.desc())
            .limit(1)
        )
        with self._db.session() as session:
            row = session.scalars(query).first()
            return None if row is None else _record(row)

    def decide(self, item_id: int, verdict: str, reviewer: str) -> ReviewItemRecord:
        """Store the verdict on a waiting item. `NotFound` for no such item; `ValueError` when
        it was judged already (the first verdict stands)."""
        if verdict not in VERDICTS:
            raise ValueError(f"a verdict is one of {', '.join(VERDICTS)}")
        with self._db.session() as session:
            row = session.get(ReviewItem, item_id)
            if row is None:
                raise NotFound(f"review item {item_id}")
            winner = {"a": row.version_a, "b": row.version_b}.get(verdict)
            changed = session.execute(  # only if still waiting: two clicks, one verdict
                update(ReviewItem)
                .where(ReviewItem.id == item_id, ReviewItem.verdict.is_(None))
                .values(verdict=verdict, winner=winner, reviewer=reviewer, decided_at=utcnow())
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if not changed:
                raise ValueError(f"Pair #{item_id} was judged already; its first verdict stands.")
            session.refresh(row)
            return _record(row)

    def win_rates(self) -> list[PairWinRate]:
        """Every pair of versions with at least one verdict, most judged first."""
        query = select(
            ReviewItem.version_a, ReviewItem.version_b, ReviewItem.winner, func.count()
        ).where(ReviewItem.verdict.is_not(None))
        counts: dict[tuple[str, str], list[int]] = {}  # pair -> [first wins, second, ties]
        with self._db.session() as session:
            rows = session.execute(
                query.group_by(ReviewItem.version_a, ReviewItem.version_b, ReviewItem.winner)
            ).all()
        for version_a, version_b, winner, n in rows:
            pair = tuple(sorted((version_a, version_b)))
            tally = counts.setdefault((pair[0], pair[1]), [0, 0, 0])
            tally[2 if winner is None else pair.index(winner)] += n
        rates = [PairWinRate(a, b, *tally) for (a, b), tally in counts.items()]
        return sorted(rates, key=lambda r: (-r.judged, r.first, r.second))

    def iter_decided(self) -> Iterator[ReviewItemRecord]:
        """Every judged item, oldest first, one page per transaction (for exports)."""
        last_id = 0
        while True:
            query = (
                select(ReviewItem)
                .where(ReviewItem.verdict.is_not(None), ReviewItem.id > last_id)
                .order_by(ReviewItem.id)
                .limit(EXPORT_PAGE_SIZE)
            )
            with self._db.session() as session:
                page = [_record(row) for row in session.scalars(query)]
            if not page:
                return
            yield from page
            last_id = page[-1].id

    def recent_prompts(
        self, limit: int, server: tuple[str, str] | None = None
    ) -> list[RecentPrompt]:
        """Members' newest distinct prompts that may be shown for review: typed by a member
        (not a 🔁/⏩ of an output), not deleted, not withheld by moderation, never reported,
        and not by a member who deleted their data; `server` (platform, server id): typed
        there only. Newest first."""
        reported = exists().where(Report.generation_id == Generation.id)
        deleted = exists().where(
            DataDeletion.platform == Generation.platform,
            DataDeletion.user_id == Generation.user_id,
        )
        query = (
            select(Generation.id, Generation.prompt)
            .where(
                Generation.kind == "new",
                Generation.redacted.is_(False),
                Generation.hidden.is_(False),
                Generation.flagged.is_(None),
                func.length(func.trim(Generation.prompt)) > 0,
                ~reported,
                ~deleted,
            )
            .order_by(Generation.id.desc())
            .limit(limit * 4)  # samples of one request share their prompt
        )
        if server is not None:
            query = query.where(Generation.platform == server[0], Generation.guild_id == server[1])
        seen: set[str] = set()
        prompts: list[RecentPrompt] = []
        with self._db.session() as session:
            for generation_id, prompt in session.execute(query):
                if prompt not in seen and len(prompts) < limit:
                    seen.add(prompt)
                    prompts.append(RecentPrompt(generation_id, prompt))
        return prompts
