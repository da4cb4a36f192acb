"""Configuration of admin rights and the learning loop. Each field names its environment
variable (read by `bot/settings.py`, documented in `.env.example`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from model.config import FinetuneConfig


def check_cron(cron: str) -> None:
    from apscheduler.triggers.cron import CronTrigger  # only when a schedule is configured

    try:
        CronTrigger.from_crontab(cron)
    except ValueError as error:
        raise ValueError(
            f"{cron!r} is not a cron expression ({error})",
            "Use five fields: minute hour day month weekday, e.g. '0 3 * * 0'.",
        ) from None


@dataclass(frozen=True)
class AdminConfig:
    # bot owners: platform user ids (comma-separated) that control everything, the shared
    # model included, in every server
    user_ids: tuple[str, ...] = field(default=(), metadata={"env": "ADMIN_USER_IDS"})
    # Discord role ids (comma-separated) whose holders are server admins of the server that
    # role belongs to (ids are unique across Discord; role names grant nothing)
    role_ids: tuple[int, ...] = field(default=(), metadata={"env": "ADMIN_ROLE"})
    # e.g. "0 3 * * 0": retrain Sundays at 03:00 (seeds the schedule when none is stored)
    retrain_cron: str | None = field(
        default=None, metadata={"env": "RETRAIN_CRON", "check": check_cron}
    )


@dataclass(frozen=True)
class ABConfig:
    """A/B experiments and their decision rule (`admin/ab_rule.py`, docs/learning-loop.md).

    The rule looks after every rating, and every look is a chance to be fooled, so the
    thresholds are stricter than one look would need: they are tuned by the simulation in
    `gpt2bot bench loop --ab-only` (👍 rates 0.5 against 0.6, 0.5 and 0.4, one rating at a time)
    to promote a truly better candidate in >= 90 % of runs and an equal or worse one in <= 5 %.
    """

    # promote the candidate when P(its 👍 rate > the active version's) reaches this
    promote_probability: float = field(
        default=0.998, metadata={"env": "AB_PROMOTE_PROBABILITY", "min": 0.5, "max": 1.0}
    )
    # retire it when P(the active version's 👍 rate > its) reaches this
    retire_probability: float = field(
        default=0.99, metadata={"env": "AB_RETIRE_PROBABILITY", "min": 0.5, "max": 1.0}
    )
    # no decision before each arm has this many counted ratings
    min_ratings: int = field(default=100, metadata={"env": "AB_MIN_RATINGS", "min": 1, "max": 1e6})
    # "no difference" once each arm has this many, undecided (never below AB_MIN_RATINGS)
    max_ratings: int = field(default=1000, metadata={"env": "AB_MAX_RATINGS", "min": 1, "max": 1e7})
    # share of members the candidate serves when `ab start` names none
    share: float = field(default=0.5, metadata={"env": "AB_SHARE", "min": 0.01, "max": 0.99})
    # a bot process looks for an experiment started or stopped elsewhere (`gpt2bot ab`) this
    # often, in seconds: the answer is cached between requests
    refresh_s: float = field(
        default=10.0, metadata={"env": "AB_REFRESH_SECONDS", "min": 0.0, "max": 3600.0}
    )

    def snapshot(self) -> dict[str, float | int | str]:
        """The rule and its thresholds, as stored with an experiment when it starts."""
        return {
            "rule": "beta-binomial",
            "promote_probability": self.promote_probability,
            "retire_probability": self.retire_probability,
            "min_ratings": self.min_ratings,
            "max_ratings": self.max_ratings,
        }


@dataclass(frozen=True)
class LearningConfig:
    # net 👍 minus 👎 a generation needs to become training data
    rating_min_score: int = field(
        default=2, metadata={"env": "RATING_MIN_SCORE", "min": -1e6, "max": 1e6}
    )
    # and from at least this many people other than its author (self-ratings never count)
    rating_min_raters: int = field(
        default=3, metadata={"env": "RATING_MIN_RATERS", "min": 1, "max": 1e6}
    )
    # and a 95% Wilson lower bound on its share of 👍 of at least this (0 turns it off)
    rating_min_lower_bound: float = field(
        default=0.4, metadata={"env": "RATING_MIN_LOWER_BOUND", "min": 0.0, "max": 1.0}
    )
    # a rater's 👍 push at most this many outputs a day toward training (0: no cap)
    rating_daily_cap: int = field(
        default=20, metadata={"env": "RATING_DAILY_CAP", "min": 0, "max": 1e6}
    )
    # a Discord account younger than this (days, from its id) when it rated does not count
    rating_min_account_days: int = field(
        default=7, metadata={"env": "RATING_MIN_ACCOUNT_DAYS", "min": 0, "max": 3650}
    )
    # rating-derived samples join the dataset at once (false: they wait for /admin curate queue)
    auto_approve: bool = field(default=False, metadata={"env": "CURATION_AUTO_APPROVE"})
    # candidate held-out loss may exceed the active's by this
    promote_tolerance: float = field(
        default=0.02, metadata={"env": "PROMOTE_TOLERANCE", "min": 0, "max": 100}
    )
    # the gate also refuses a candidate whose fixed-prompt samples are flagged by the moderator
    # more often than the active version's, by more than this share (0..1)
    promote_flagged_tolerance: float = field(
        default=0.0, metadata={"env": "PROMOTE_FLAGGED_TOLERANCE", "min": 0, "max": 1}
    )
    # promote a trained candidate that passes the gate
    auto_promote: bool = field(default=True, metadata={"env": "AUTO_PROMOTE"})
    min_schedule_minutes: int = 60  # schedules firing more often than this are refused
    # of several bot processes on one database, the lease holder runs the schedule and resumes
    # interrupted runs; it renews every renew_s, and another takes over ttl_s after it dies
    schedule_lease_ttl_s: float = 60.0
    schedule_lease_renew_s: float = 15.0
    # training processes: 1 = `python -m model.finetune` on one device; N > 1 = the same recipe
    # under `accelerate launch --multi_gpu --num_processes N` (one per GPU; data parallel)
    train_processes: int = field(
        default=1, metadata={"env": "TRAIN_PROCESSES", "min": 1, "max": 64}
    )
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    ab: ABConfig = field(default_factory=ABConfig)


@dataclass(frozen=True)
class FleetConfig:
    """How every `gpt2bot run` follows the database (`admin/follow.py`, docs/operating.md)."""

    # each serving process reads the active version and the running A/B experiment this often
    # (seconds), hot-swaps to a change whoever made it, and renews its row in the fleet; a
    # process still serving something else two rounds after a change is shown as lagging
    follow_interval_s: float = field(
        default=5.0,
        metadata={
            "env": "FOLLOW_INTERVAL_S",
            "min": 0.1,
            "max": 300.0,
            "help": "seconds between a serving process's looks at the database",
        },
    )
