"""A/B experiments: the active version (control) against a candidate on live ratings, and the
counts of each arm.

At most one experiment runs per model line (the shared line is `None`, a server's line its key
"discord:1234"): `start` checks in its transaction, and a partial unique index on the running
row's line (`uq_experiments_one_running_per_line`) refuses a second one that another process
inserted at the same moment.

Ratings are counted per rating row, over the generations each arm served, with the rules of
`storage.rating_rule.counted` that treat both arms alike: a member's rating of their own output
never counts, nor one from a Discord account younger than `min_account_days`. The daily cap
does not apply: it caps 👍 only, so it would tilt the comparison toward the arm with eager
raters' 👎.

Every method is one transaction returning records; async callers use `Database.run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.fleet import announce
from storage.models import Experiment, Generation, Rating, utcnow
from storage.rating_rule import RatingRow, counted

ARMS = ("control", "candidate")
RUNNING = "running"
ENDED_STATUSES = ("promoted", "retired", "no_difference", "stopped")


class ExperimentRunning(Exception):
    """Another experiment is running in the line; only one may run per line."""


@dataclass(frozen=True)
class ExperimentRecord:
    id: int
    control_version: str
    candidate_version: str
    candidate_share: float
    status: str  # running|promoted|retired|no_difference|stopped
    rule: dict[str, Any]  # the decision rule and its thresholds when it started
    started_by: str
    started_at: datetime
    ended_by: str | None = None
    ended_at: datetime | None = None
    outcome: dict[str, Any] | None = None  # the numbers the decision was made on
    line: str | None = None  # the model line it runs in (None: the shared line)

    @property
    def running(self) -> bool:
        return self.status == RUNNING


@dataclass(frozen=True)
class ArmCounts:
    """What one arm served and how it was rated (counted ratings only)."""

    generations: int = 0
    ratings: int = 0
    up: int = 0
    down: int = 0


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every moment stored here is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _record(row: Experiment) -> ExperimentRecord:
    return ExperimentRecord(
        id=row.id,
        control_version=row.control_version,
        candidate_version=row.candidate_version,
        candidate_share=row.candidate_share,
        status=row.status,
        rule=dict(row.rule or {}),
        started_by=row.started_by,
        started_at=_utc(row.started_at),
        ended_by=row.ended_by,
        ended_at=None if row.ended_at is None else _utc(row.ended_at),
        outcome=None if row.outcome is None else dict(row.outcome),
        line=row.line or None,
    )


def _in_line(line: str | None) -> Any:
    return Experiment.line == (line or "")  # the shared line is "" in this table


class ExperimentRepository:
    """Experiments and the per-arm counts of their generations and ratings."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def start(
        self,
        control: str,
        candidate: str,
        share: float,
        rule: dict[str, Any],
        started_by: str,
        line: str | None = None,
    ) -> ExperimentRecord:
        """Record a running experiment in `line`; `ExperimentRunning` when one runs there."""
        running = select(Experiment).where(Experiment.status == RUNNING, _in_line(line))
        try:
            with self._db.session() as session:
                if session.scalars(running).first():
                    raise ExperimentRunning("an experiment is running already")
                row = Experiment(
                    control_version=control,
                    candidate_version=candidate,
                    candidate_share=share,
                    status=RUNNING,
                    rule=rule,
                    started_by=started_by,
                    line=line or "",
                )
                session.add(row)
                announce(session)  # every serving process loads the candidate (fleet.py)
                session.flush()
                return _record(row)
        except IntegrityError:  # another process started one between our check and insert
            raise ExperimentRunning("an experiment is running already") from None

    def running(self, line: str | None = None) -> ExperimentRecord | None:
        """The experiment running in `line` (None: the shared line)."""
        with self._db.session() as session:
            query = select(Experiment).where(Experiment.status == RUNNING, _in_line(line))
            row = session.scalars(query).first()
            return None if row is None else _record(row)

    def every_running(self) -> list[ExperimentRecord]:
        """The experiments running in every line (what a serving process keeps resident)."""
        with self._db.session() as session:
            query = select(Experiment).where(Experiment.status == RUNNING)
            return [_record(row) for row in session.scalars(query.order_by(Experiment.id))]

    def latest(self, line: str | None = None) -> ExperimentRecord | None:
        """The experiment running in `line`, else the one started there last."""
        with self._db.session() as session:
            query = select(Experiment).where(_in_line(line))
            query = query.order_by((Experiment.status == RUNNING).desc())
            row = session.scalars(query.order_by(Experiment.id.desc()).limit(1)).first()
            return None if row is None else _record(row)

    def get(self, experiment_id: int) -> ExperimentRecord | None:
        with self._db.session() as session:
            row = session.get(Experiment, experiment_id)
            return None if row is None else _record(row)

    def finish(
        self, experiment_id: int, status: str, ended_by: str, outcome: dict[str, Any]
    ) -> ExperimentRecord | None:
        """End the experiment if it still runs; None when it had ended already (another
        process decided first), so exactly one caller acts on a decision."""
        if status not in ENDED_STATUSES:
            raise ValueError(f"{status!r} is not how an experiment ends: {ENDED_STATUSES}")
        with self._db.session() as session:
            query = (
                update(Experiment)
                .where(Experiment.id == experiment_id, Experiment.status == RUNNING)
                .values(status=status, ended_by=ended_by, ended_at=utcnow(), outcome=outcome)
            )
            if not session.execute(query).rowcount:  # type: ignore[attr-defined]
                return None
            announce(session)  # every serving process unloads the candidate
            row = session.get(Experiment, experiment_id)
            assert row is not None
            session.refresh(row)
            return _record(row)

    def amend(self, experiment_id: int, status: str, outcome: dict[str, Any]) -> ExperimentRecord:
        """Correct how an ended experiment ended (a promotion the gate then refused)."""
        with self._db.session() as session:
            row = session.get(Experiment, experiment_id)
            if row is None or row.status == RUNNING:
                raise ValueError(f"experiment {experiment_id} has not ended")
            row.status, row.outcome = status, {**(row.outcome or {}), **outcome}
            session.flush()
            return _record(row)

    def counts(self, experiment_id: int, min_account_days: int = 0) -> dict[str, ArmCounts]:
        """Generations and counted ratings (👍, 👎) of each arm."""
        with self._db.session() as session:
            generated = dict(
                session.execute(
                    select(Generation.arm, func.count(Generation.id))
                    .where(Generation.experiment_id == experiment_id)
                    .group_by(Generation.arm)
                ).all()
            )
            query = (
                select(Rating, Generation.user_id, Generation.platform, Generation.arm)
                .join(Generation, Rating.generation_id == Generation.id)
                .where(Generation.experiment_id == experiment_id)
            )
            arm_of: dict[int, str | None] = {}
            rows = []
            for rating, author, platform, arm in session.execute(query):
                arm_of[rating.id] = arm
                rows.append(
                    RatingRow(
                        rating.id,
                        rating.generation_id,
                        author,
                        rating.rater_id,
                        rating.score,
                        rating.created_at,
                        platform,
                    )
                )
        kept = counted(rows, daily_cap=0, min_account_days=min_account_days)
        result = {}
        for arm in ARMS:
            scores = [row.score for row in kept if arm_of[row.rating_id] == arm]
            up = sum(score > 0 for score in scores)
            result[arm] = ArmCounts(generated.get(arm, 0), len(scores), up, len(scores) - up)
        return result
