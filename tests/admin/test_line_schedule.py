"""A server line's own retrain schedule: set by its admins once the owners enabled the line, a
job beside the shared one in the same store (fired with the line's key), shown by `status`,
and a scheduled run that trains the line only when its training set gained something since its
last run (a shared run does not count), and never for a line the owners took back."""

from __future__ import annotations

import asyncio
from datetime import UTC

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from admin.base import AdminServices
from admin.errors import Invalid
from admin.lines import Lines
from admin.scheduler import RetrainScheduler, job_id, line_of
from admin.training import Training
from bot.admin_commands.render import Renderer
from storage import AuditRepository, Database, RunStatus, ServerSettingsRepository

KEY = "discord:42"


@pytest.fixture
def lines(services: AdminServices) -> Lines:
    assert isinstance(services.lines, Lines)
    return services.lines


def test_each_line_has_its_own_job() -> None:
    assert job_id() == "gpt2bot-retrain" and line_of(job_id()) == (True, None)
    assert line_of(job_id(KEY)) == (True, KEY)
    assert line_of("something-else") == (False, None)


async def test_a_line_schedule_is_set_shown_and_cleared_beside_the_shared_one(
    lines: Lines, training: Training, db: Database
) -> None:
    assert (await lines.status(KEY)).next_runs is None  # no running schedule in this process
    await training.scheduler.start(None, 60)
    with pytest.raises(Invalid, match="has no model line of its own"):
        await lines.schedule("mod", KEY, "0 3 * * *")
    await lines.allow("owner", KEY, enabled=True)
    with pytest.raises(Invalid, match="at least 60 minutes"):
        await lines.schedule("mod", KEY, "*/5 * * * *")

    times = await lines.schedule("mod", KEY, "30 4 * * *")
    assert len(times) == 3 and all((t.hour, t.minute) == (4, 30) for t in times)
    assert (await lines.status(KEY)).next_runs == tuple(times)
    shown = Renderer().line(await lines.status(KEY))  # `line show`
    assert f"Scheduled retraining: next runs {times[0]:%Y-%m-%d} 04:30 UTC" in shown
    assert training.scheduler.next_runs() == []  # the shared schedule is untouched
    await training.schedule("owner", "0 2 * * *")
    assert (await lines.status(KEY)).next_runs == tuple(times)

    assert await lines.schedule("mod", KEY, None) == []
    assert (await lines.status(KEY)).next_runs == ()
    assert "No retrain schedule of its own" in Renderer().line(await lines.status(KEY))
    assert len(training.scheduler.next_runs()) == 3
    audited = [e for e in AuditRepository(db).recent() if e["action"] == "line schedule"]
    assert [e["detail"]["cron"] for e in reversed(audited)] == ["30 4 * * *", None]
    assert {(e["scope"], e["server_id"]) for e in audited} == {("line", KEY)}


async def test_a_line_job_fires_with_its_line(db: Database) -> None:
    fired: asyncio.Queue[str | None] = asyncio.Queue()

    async def on_fire(line: str | None) -> None:
        await fired.put(line)

    scheduler = RetrainScheduler(db.engine, on_fire)
    await scheduler.start(None, 60)
    try:
        await scheduler.set_trigger(IntervalTrigger(seconds=1, timezone=UTC), KEY)
        assert await asyncio.wait_for(fired.get(), timeout=15) == KEY
    finally:
        await scheduler.stop()


async def test_a_scheduled_line_run_trains_only_on_new_data_of_an_enabled_line(
    lines: Lines, training: Training, db: Database, domain: list[str]
) -> None:
    await lines.allow("owner", KEY, enabled=True)
    await lines.add("mod", KEY, domain[:8])
    ServerSettingsRepository(db).update("discord", "42", "owner", own_line=False)
    skipped = await training.scheduled_retrain(KEY)
    assert skipped is not None and skipped.status == RunStatus.SKIPPED and skipped.line == KEY
    assert skipped.error == f"skipped: {KEY} no longer has a model line of its own"
    ServerSettingsRepository(db).update("discord", "42", "owner", own_line=True)

    shared = training.runs.create("manual", "owner", RunStatus.RUNNING)  # the shared line's
    training.runs.update(shared.id, status=RunStatus.SUCCEEDED)
    run = await training.scheduled_retrain(KEY)  # the line never trained: it trains now
    assert run is not None and (run.trigger, run.line) == ("schedule", KEY)
    final = await training.wait()
    assert final is not None and final.status == RunStatus.SUCCEEDED, final
    version = training.registry.repository.get(final.model_version or "")
    assert version is not None and version.line == KEY

    again = await training.scheduled_retrain(KEY)  # nothing new in the line since
    assert again is not None and again.status == RunStatus.SKIPPED
    assert again.error == f"skipped: no new curated data since run {run.id}"
    await training.curation.add("owner", ["A shared text the line never sees at all."])
    still = await training.scheduled_retrain(KEY)  # the shared line's new data is not its
    assert still is not None and still.status == RunStatus.SKIPPED
    assert training.runs.last_trained(KEY).id == run.id  # type: ignore[union-attr]
    assert training.runs.last_trained().id == shared.id  # type: ignore[union-attr]
    await lines.add("mod", KEY, ["Robot number 99 paints the red gate in the garden."])
    trains = await training.scheduled_retrain(KEY)  # the line's own new text: it trains
    assert trains is not None and trains.status == RunStatus.RUNNING and trains.line == KEY
    assert (await training.wait()).status == RunStatus.SUCCEEDED  # type: ignore[union-attr]
