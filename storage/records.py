"""Plain dataclasses that repositories return; callers never see ORM objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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
    kind: str = "new"  # new|regenerate|continue
    parent_id: int | None = None
    conversation_id: int | None = None  # None starts a new conversation


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

    @property
    def net_score(self) -> int:
        return sum(rating.score for rating in self.ratings)


@dataclass(frozen=True)
class ModelVersionRecord:
    name: str
    parent: str | None
    path: str
    base_model: str
    training_run_id: int | None
    metrics: dict[str, Any]
    status: str
    created_at: datetime
    activated_at: datetime | None


@dataclass(frozen=True)
class VersionRatingStats:
    """Ratings of one model version: the A/B view."""

    model_version: str
    generations: int
    ratings: int
    mean_score: float
    positive_share: float
    raters: int
