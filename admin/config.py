"""Configuration of the learning loop (composed into `bot.settings.Settings.learning`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from model.config import FinetuneConfig


@dataclass(frozen=True)
class LearningConfig:
    rating_min_score: int = 2  # net 👍 minus 👎 a generation needs to become training data
    rating_min_raters: int = 2  # and from at least this many people
    promote_tolerance: float = 0.02  # candidate held-out loss may exceed the active's by this
    auto_promote: bool = True  # promote a trained candidate that passes the gate
    min_schedule_minutes: int = 60  # schedules firing more often than this are refused
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
