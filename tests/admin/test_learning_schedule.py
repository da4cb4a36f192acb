"""Scheduled retraining: validation, persistence across restarts, skipping when nothing changed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from admin.curation import Curation
from admin.scheduler import RETRAIN_JOB_ID, RetrainScheduler, parse_cron
from admin.training import Training
from storage import Database, RunStatus

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday


def test_cron_validation() -> None:
    trigger = parse_cron("0 3 * * 0", 60, NOW)
    first = trigger.get_next_fire_time(None, NOW)
    assert first == datetime(2026, 1, 11, 3, 0, tzinfo=UTC)  # Sunday, as in crontab
    weekdays = parse_cron("0 9 * * 1-5", 60, NOW).get_next_fire_time(None, NOW)
    assert weekdays == datetime(2026, 1, 6, 9, 0, tzinfo=UTC)  # Tuesday: Monday 09:00 passed
    assert parse_cron("0 3 * * 7", 60, NOW).get_next_fire_time(None, NOW).weekday() == 6
    with pytest.raises(ValueError, match="every 1 minutes; retraining needs at least 60"):
        parse_cron("* * * * *", 60, NOW)
    with pytest.raises(ValueError, match="never fires"):
        parse_cron("0 0 30 2 *", 60, NOW)
    with pytest.raises(ValueError, match="five fields"):
        parse_cron("every day", 60, NOW)


async def test_schedule_persists_and_fires_after_a_scheduler_restart(db: Database) -> None:
    async def unexpected(line: str | None) -> None:
        raise AssertionError("the first scheduler must not fire")

    first = RetrainScheduler(db.engine, unexpected)
    await first.start(None, 60)
    await first.set_trigger(IntervalTrigger(seconds=2, timezone=UTC))
    await first.stop()  # "the bot restarts"

    fired = asyncio.Event()

    async def on_fire(line: str | None) -> None:
        assert line is None  # the shared schedule
        fired.set()

    second = RetrainScheduler(db.engine, on_fire)
    # RETRAIN_CRON at start-up must not replace the stored job (that would drop missed runs)
    await second.start("0 3 * * *", 60)
    try:
        job = second._require().get_job(RETRAIN_JOB_ID)
        assert isinstance(job.trigger, IntervalTrigger)
        assert (job.coalesce, job.max_instances) == (True, 1)
        await asyncio.wait_for(fired.wait(), timeout=15)
    finally:
        await second.stop()


async def test_admin_schedule_shows_next_runs_and_can_be_cleared(training: Training) -> None:
    await training.scheduler.start(None, 60)
    times = await training.schedule("admin", "30 4 * * *")
    assert len(times) == 3 and all(t.hour == 4 and t.minute == 30 for t in times)
    assert training.scheduler.next_runs() == times
    with pytest.raises(ValueError, match="at least 60 minutes"):
        await training.schedule("admin", "*/5 * * * *")
    assert await training.schedule("admin", None) == []
    assert training.scheduler.next_runs() == []


async def test_scheduled_run_without_new_data_is_skipped(
    training: Training, curation: Curation
) -> None:
    await curation.add("admin", ["first sample text", "second sample text"])
    done = training.runs.create("manual", "admin", RunStatus.RUNNING)
    training.runs.update(done.id, status=RunStatus.SUCCEEDED)
    info = await training.scheduled_retrain()
    assert info is not None and info.status == RunStatus.SKIPPED and info.trigger == "schedule"
    assert info.error == f"skipped: no new curated data since run {done.id}"
    status = await training.status()
    assert status is not None and status.id == info.id


async def test_a_schedule_change_without_the_running_bot_is_a_sentence(db: Database) -> None:
    async def never(line: str | None) -> None:
        raise AssertionError("nothing is scheduled")

    scheduler = RetrainScheduler(db.engine, never)  # never started: a one-shot command
    with pytest.raises(ValueError, match="kept by the running bot"):
        await scheduler.set_trigger(parse_cron("0 3 * * 0", 60, NOW))


def test_a_job_table_another_process_just_created_is_not_an_error(tmp_path, monkeypatch):
    """Several processes starting on a new database: one creates APScheduler's table between
    another's check and its create; that one goes on instead of failing to start."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from sqlalchemy import create_engine, inspect

    from admin.scheduler import JOB_TABLE, _create_job_table

    engine = create_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    store = SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)
    SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE).jobs_t.create(engine)  # the other
    create = store.jobs_t.create  # this one had checked before the other created it
    monkeypatch.setattr(store.jobs_t, "create", lambda bind, checkfirst: create(bind, False))
    _create_job_table(store)
    assert inspect(engine).has_table(JOB_TABLE)
    engine.dispose()
