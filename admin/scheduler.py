"""Scheduled retraining: APScheduler 3.x `AsyncIOScheduler` with its job store in the app
database, so a schedule survives restarts.

APScheduler stores a job as an importable callable plus picklable arguments, so the stored job
is a tiny coroutine (`admin.scheduler:retrain_tick`) and this scheduler's listener starts the
retrain when it has run: the live service is never pickled and no module-level registry is
needed. `coalesce=True, max_instances=1` and a misfire grace time give one catch-up run after
downtime; at start-up an existing stored job is kept as is (re-adding it with
`replace_existing=True` would silently drop the missed run). The job store creates its table
on start with a check first, which races when several processes start on a new database (a
fleet): `_create_job_table` creates it before and lets the loser of that race go on.

A server's model line may have a retrain schedule of its own: a second job in the same store
whose id names the line (`job_id`), fired by the same lease holder (admin/schedule_lease.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import DBAPIError

from admin.errors import Invalid

log = logging.getLogger(__name__)

RETRAIN_JOB_ID = "gpt2bot-retrain"
LINE_JOB_SEPARATOR = "@"  # "gpt2bot-retrain@discord:1234": the schedule of that server's line
JOB_TABLE = "apscheduler_jobs"
MISFIRE_GRACE_S = 6 * 3600  # a run missed while the bot was down still happens if this recent
NEXT_RUNS_SHOWN = 3
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
GAP_CHECKED_RUNS = 24  # fire times inspected to find the shortest gap of a schedule


async def retrain_tick() -> None:
    """The stored job. The scheduler's listener does the work (see the module docstring)."""


def job_id(line: str | None = None) -> str:
    """The stored job of `line`'s retrain schedule (None: the shared line's)."""
    return RETRAIN_JOB_ID if line is None else f"{RETRAIN_JOB_ID}{LINE_JOB_SEPARATOR}{line}"


def line_of(job: str) -> tuple[bool, str | None]:
    """(whether `job` is a retrain schedule, the line it retrains: None for the shared one)."""
    if job == RETRAIN_JOB_ID:
        return True, None
    prefix = RETRAIN_JOB_ID + LINE_JOB_SEPARATOR
    return (True, job.removeprefix(prefix)) if job.startswith(prefix) else (False, None)


def _weekday(token: str) -> str:
    return WEEKDAYS[int(token) % 7] if token.isdigit() and int(token) <= 7 else token


def standard_weekdays(cron: str) -> str:
    """APScheduler 3 numbers weekdays from Monday=0; crontab from Sunday=0 (7 too). Spell the
    weekday field in names so "0 3 * * 0" means Sunday, as it does for cron."""
    fields = cron.split()
    if len(fields) != 5:
        return cron
    parts = []
    for part in fields[4].split(","):
        span, _, step = part.partition("/")
        span = "-".join(_weekday(t) for t in span.split("-"))
        parts.append(f"{span}/{step}" if step else span)
    return " ".join([*fields[:4], ",".join(parts)])


def parse_cron(cron: str, min_gap_minutes: int, now: datetime | None = None) -> CronTrigger:
    """A UTC cron trigger for five-field `cron`; `Invalid` for invalid or absurd ones."""
    try:
        trigger = CronTrigger.from_crontab(standard_weekdays(cron), timezone=UTC)
    except ValueError as error:
        raise Invalid(
            f"{cron!r} is not a cron schedule ({error}). Use five fields: minute hour "
            "day month weekday, e.g. '0 3 * * 0' for Sundays at 03:00 UTC."
        ) from None
    times = next_fire_times(trigger, GAP_CHECKED_RUNS, now)
    if not times:
        raise Invalid(f"{cron!r} never fires; pick a date that exists, e.g. '0 3 1 * *'.")
    gaps = [(b - a).total_seconds() / 60 for a, b in itertools.pairwise(times)]
    if gaps and min(gaps) < min_gap_minutes:
        raise Invalid(
            f"{cron!r} would retrain every {min(gaps):.0f} minutes; retraining needs at least "
            f"{min_gap_minutes} minutes between runs. Try e.g. '0 3 * * *' (daily at 03:00 UTC)."
        )
    return trigger


def next_fire_times(
    trigger: BaseTrigger, count: int, now: datetime | None = None
) -> list[datetime]:
    times: list[datetime] = []
    previous: datetime | None = None
    current = now or datetime.now(UTC)
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, current)
        if fire is None:
            break
        times.append(fire)
        previous, current = fire, fire
    return times


class RetrainScheduler:
    """Owns the APScheduler instance; `on_fire(line)` is awaited when a retrain job fires
    (`line`: None for the shared schedule, else the server line's key)."""

    def __init__(self, engine: Engine, on_fire: Callable[[str | None], Awaitable[object]]) -> None:
        self._engine = engine
        self._on_fire = on_fire
        self._scheduler: AsyncIOScheduler | None = None
        self._tasks: set[asyncio.Task[object]] = set()

    async def start(
        self, default_cron: str | None, min_gap_minutes: int, paused: bool = False
    ) -> None:
        """Start; add `default_cron` (RETRAIN_CRON) only when no schedule is stored yet.
        `paused`: read and change the stored schedule, but fire nothing until `resume()`
        (a bot process that does not hold the schedule lease)."""
        store = SQLAlchemyJobStore(engine=self._engine, tablename=JOB_TABLE)
        await asyncio.to_thread(_create_job_table, store)
        scheduler = AsyncIOScheduler(
            jobstores={"default": store},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": MISFIRE_GRACE_S,
            },
            timezone=UTC,
            event_loop=asyncio.get_running_loop(),
        )
        scheduler.add_listener(self._executed, EVENT_JOB_EXECUTED)
        # the job store reads the database: keep that off the event loop
        await asyncio.to_thread(scheduler.start, paused=paused)
        self._scheduler = scheduler
        if default_cron and scheduler.get_job(RETRAIN_JOB_ID) is None:
            await self.set_trigger(parse_cron(default_cron, min_gap_minutes))

    async def set_trigger(
        self, trigger: BaseTrigger | None, line: str | None = None
    ) -> list[datetime]:
        """Replace (or with None, remove) `line`'s retrain job; returns its next run times."""
        scheduler, job = self._require(), job_id(line)
        if trigger is None:
            if scheduler.get_job(job) is not None:
                await asyncio.to_thread(scheduler.remove_job, job)
            return []
        await asyncio.to_thread(
            scheduler.add_job,
            "admin.scheduler:retrain_tick",
            trigger=trigger,
            id=job,
            name="retrain" if line is None else f"retrain {line}",
            replace_existing=True,  # an explicit change by an admin, not the start-up path
        )
        return next_fire_times(trigger, NEXT_RUNS_SHOWN)

    def resume(self) -> None:
        """Fire jobs from now on (this process took the schedule lease)."""
        self._require().resume()

    def pause(self) -> None:
        """Fire nothing (another process holds the schedule lease now)."""
        self._require().pause()

    def wakeup(self) -> None:
        """Re-read the job store now: another process may have changed the schedule."""
        self._require().wakeup()

    def next_runs(self, line: str | None = None) -> list[datetime]:
        job = self._require().get_job(job_id(line))
        return [] if job is None else next_fire_times(job.trigger, NEXT_RUNS_SHOWN)

    @property
    def running(self) -> bool:
        """Whether this process keeps the schedule (`gpt2bot run`; not one-shot commands)."""
        return self._scheduler is not None

    def _executed(self, event: JobExecutionEvent) -> None:
        retrain, line = line_of(event.job_id)
        if not retrain:
            return
        task = asyncio.get_running_loop().create_task(self._fire(line))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fire(self, line: str | None) -> None:
        try:
            await self._on_fire(line)
        except Exception:
            log.exception("scheduled retrain of %s failed", line or "the shared line")

    def _require(self) -> AsyncIOScheduler:
        if self._scheduler is None:  # one-shot commands and tests open without the schedule
            raise Invalid(
                "The retrain schedule is kept by the running bot: change it from chat or the "
                "dashboard while `gpt2bot run` is up."
            )
        return self._scheduler

    async def stop(self) -> None:
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        for task in list(self._tasks):
            task.cancel()
        self._scheduler = None


def _create_job_table(store: SQLAlchemyJobStore) -> None:
    """The job store's table, created once whoever gets there first: another process may
    create it between the check and the create ("table apscheduler_jobs already exists")."""
    try:
        store.jobs_t.create(store.engine, checkfirst=True)
    except DBAPIError:
        if not inspect(store.engine).has_table(JOB_TABLE):
            raise
