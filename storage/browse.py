"""Read-only views for dashboards: generations filtered and paged, training runs with losses.

Blocking like every repository; async callers go through `Database.run`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, or_, select

from storage.db import Database
from storage.generations import (
    GenerationRecord,
    _generation_record,
    _ratings_by_generation,
    iter_generations,
)
from storage.models import Generation, Rating
from storage.training import TrainingRunRepository, TrainingRunSummary

RATING_FILTERS = ("any", "rated", "unrated", "up", "down")


@dataclass(frozen=True)
class GenerationFilter:
    """Which generations to show; every field narrows the result, None means "any"."""

    model_version: str | None = None
    rating: str = "any"  # one of RATING_FILTERS: "up"/"down" = has a positive/negative rating
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    text: str | None = None  # substring of the prompt or the output (case-insensitive)
    platform: str | None = None
    user_id: str | None = None

    def __post_init__(self) -> None:
        if self.rating not in RATING_FILTERS:
            raise ValueError(f"rating filter must be one of {', '.join(RATING_FILTERS)}")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _apply(query: Select[Any], flt: GenerationFilter) -> Select[Any]:
    if flt.model_version:
        query = query.where(Generation.model_version == flt.model_version)
    if flt.platform:
        query = query.where(Generation.platform == flt.platform)
    if flt.user_id:
        query = query.where(Generation.user_id == flt.user_id)
    if flt.since is not None:
        query = query.where(Generation.created_at >= flt.since)
    if flt.until is not None:
        query = query.where(Generation.created_at < flt.until)
    if flt.text:
        pattern = f"%{_escape_like(flt.text)}%"
        query = query.where(
            or_(
                Generation.prompt.ilike(pattern, escape="\\"),
                Generation.output.ilike(pattern, escape="\\"),
            )
        )
    rated = select(Rating.id).where(Rating.generation_id == Generation.id)
    if flt.rating == "rated":
        query = query.where(exists(rated))
    elif flt.rating == "unrated":
        query = query.where(~exists(rated))
    elif flt.rating == "up":
        query = query.where(exists(rated.where(Rating.score > 0)))
    elif flt.rating == "down":
        query = query.where(exists(rated.where(Rating.score < 0)))
    return query


class GenerationBrowser:
    """Filtered, paged reads of generations with their ratings."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def search(
        self, flt: GenerationFilter, limit: int = 50, before_id: int | None = None
    ) -> list[GenerationRecord]:
        """Newest first; pass the last id seen as `before_id` for the next page."""
        query = _apply(select(Generation), flt)
        if before_id is not None:
            query = query.where(Generation.id < before_id)
        with self._db.session() as session:
            rows = list(session.scalars(query.order_by(Generation.id.desc()).limit(limit)))
            ratings = _ratings_by_generation(session, [r.id for r in rows])
            return [_generation_record(r, ratings[r.id]) for r in rows]

    def iter(self, flt: GenerationFilter) -> Iterator[GenerationRecord]:
        """Every matching generation, oldest first, page by page (for exports)."""
        return iter_generations(self._db, _apply(select(Generation), flt))

    def model_versions(self) -> list[str]:
        """Every model version that has generations (for filter menus)."""
        with self._db.session() as session:
            query = select(Generation.model_version).distinct().order_by(Generation.model_version)
            return list(session.scalars(query))

    def training_runs(self, limit: int = 10) -> list[TrainingRunSummary]:
        """The most recent training runs, newest first."""
        return TrainingRunRepository(self._db).summaries(limit)
