"""What the admin use-cases answer with: plain frozen records that platforms and the CLI render
(the seams that return them are in `admin/base.py`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from storage import ModelVersionRecord, TrainingRunRecord

# called with the run as it advances and when it ends (`progress` and `eta_s` are live)
ProgressCallback = Callable[[TrainingRunRecord], Any]


@dataclass(frozen=True)
class CurationReport:
    """What an add did: "added 120, skipped 3 duplicates, 1 too long"."""

    added: int
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count

    def summary(self) -> str:
        parts = [f"added {self.added}"] + [f"skipped {n} {why}" for why, n in self.skipped.items()]
        return ", ".join(parts)


@dataclass(frozen=True)
class BlindPair:
    """A review item as an owner sees it before judging: no version names, by construction."""

    id: int
    prompt: str
    source: str  # "fixed" (an evaluation prompt) or "recent" (a member's prompt)
    output_a: str
    output_b: str


@dataclass(frozen=True)
class Assignment:
    """The arm of a running experiment that a member is in, and the versions of both arms."""

    experiment_id: int
    arm: str  # control|candidate
    control: str
    candidate: str

    @property
    def version(self) -> str:
        """The version that serves the member."""
        return self.candidate if self.arm == "candidate" else self.control


@dataclass(frozen=True)
class ArmStatus:
    """One arm of an experiment: what it served and how it was rated (counted ratings)."""

    arm: str  # control|candidate
    version: str
    share: float  # of members it serves
    generations: int
    ratings: int
    up: int
    down: int
    up_share: float | None  # 👍 / ratings; None before the first rating
    interval: tuple[float, float]  # 95 % credible interval of its 👍 rate


@dataclass(frozen=True)
class ExperimentStatus:
    """An experiment as platforms and the CLI show it: everything a renderer needs."""

    id: int
    status: str  # running|promoted|retired|no_difference|stopped
    control: ArmStatus
    candidate: ArmStatus
    decision: str  # what the rule says now: continue|promote|retire|no_difference
    probability: float  # P(candidate's 👍 rate > control's)
    reason: str  # the decision (or how it ended) in words
    rule: dict[str, Any]  # the rule and its thresholds, as stored when it started
    started_by: str
    started_at: datetime
    ended_by: str | None = None
    ended_at: datetime | None = None
    line: str | None = None  # the model line it runs in (None: the shared line)

    @property
    def running(self) -> bool:
        return self.status == "running"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (`gpt2bot ab status --json`, the dashboard)."""
        values = asdict(self)
        arms = {arm: values.pop(arm) for arm in ("control", "candidate")}
        for arm in arms.values():
            arm["interval"] = list(arm["interval"])
        started, ended = self.started_at.isoformat(), self.ended_at
        return {
            **values,
            "arms": arms,
            "started_at": started,
            "ended_at": None if ended is None else ended.isoformat(),
        }


@dataclass(frozen=True)
class LineStatus:
    """A server's line: whether the owners enabled it, and its versions (oldest first)."""

    key: str  # "discord:1234"
    enabled: bool
    shares: bool  # its data may also train the shared model
    versions: tuple[ModelVersionRecord, ...]
    # the next runs of its own retrain schedule (empty: none); None where this process does
    # not keep the schedule (one-shot commands: `gpt2bot run` does)
    next_runs: tuple[datetime, ...] | None = None

    @property
    def active(self) -> ModelVersionRecord | None:
        """The version its members are served (None: the shared active version serves)."""
        if not self.enabled:
            return None
        return next((v for v in self.versions if v.status == "active"), None)

    def to_dict(self) -> dict[str, Any]:
        """For `--json` and the dashboard (datetimes left as they are)."""
        active = self.active
        return {
            "server": self.key,
            "enabled": self.enabled,
            "shares": self.shares,
            "served": None if active is None else active.name,  # None: the shared version
            "versions": [asdict(v) for v in self.versions],
            "next_runs": None if self.next_runs is None else list(self.next_runs),
        }
