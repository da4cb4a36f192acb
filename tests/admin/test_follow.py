"""Following the database: a serving process hot-swaps to what another process or a shell
command made active, loads the running experiment's candidate, says when it cannot, and the
fleet view shows each live process and whether it lags."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import update

from admin.config import ABConfig, FleetConfig
from admin.experiments import Experiments
from admin.fleet import Fleet
from admin.follow import Follower, ProcessIdentity
from admin.registry import Registry
from model.backends.fake import ScriptedBackend
from model.backends.idle import IdleBackend
from storage import Database, ModelVersionRepository, ProcessRepository, upgrade
from storage.fleet import ProcessBeat
from storage.models import ServingProcess, utcnow
from tests.admin.test_experiments import rate
from tests.fleet import fresh_postgres

FAST = FleetConfig(follow_interval_s=0.05)


class Unloadable(ScriptedBackend):
    """A backend on a machine whose MODEL_DIR lacks some versions' folders."""

    def __init__(self, missing: set[str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.missing = missing

    async def swap(self, version: str, path: str) -> None:
        if version in self.missing:
            raise OSError(f"{path} is not a folder on this machine")
        await super().swap(version, path)


@pytest.fixture
def versions(db: Database) -> ModelVersionRepository:
    repo = ModelVersionRepository(db)
    for name in ("v1", "v2"):
        repo.add(name, f"/models/{name}", "bootstrap")
    repo.activate("v1")
    return repo


def serving(db: Database, backend: ScriptedBackend, config: FleetConfig = FAST) -> Follower:
    """A `gpt2bot run` process's follower over `backend` (which serves v1)."""
    registry = Registry(db, 0.02, backend)
    experiments = Experiments(db, registry, backend, ABConfig(), serves=True)
    return Follower(db, registry, experiments, backend, config, ProcessIdentity("web"))


def shell(db: Database) -> tuple[Registry, Experiments]:
    """What a one-shot `gpt2bot models|ab` command changes: the database only."""
    backend = IdleBackend("v1")
    registry = Registry(db, 0.02, backend)
    return registry, Experiments(db, registry, backend, ABConfig(), serves=False)


async def test_a_change_from_the_shell_is_served_and_the_fleet_says_so(db, versions) -> None:
    one, two = ScriptedBackend(model_version="v1"), ScriptedBackend(model_version="v1")
    first, second = serving(db, one), serving(db, two)
    await first.start()
    await second.start()
    fleet = Fleet(db, FAST)
    view = await fleet.view()
    assert view.active == "v1" and len(view.processes) == 2 and not view.behind

    registry, _ = shell(db)
    await registry.use("cli", "v2", force=True)
    view = await fleet.wait(timeout_s=5)
    assert one.model_version == two.model_version == "v2"  # hot-swapped, not restarted
    assert not view.behind and view.summary() == "2 live processes: all serve it."
    await registry.rollback("cli")
    assert not (await fleet.wait(timeout_s=5)).behind and one.model_version == "v1"

    await second.close()  # a clean stop leaves the fleet at once
    assert [p.id for p in (await fleet.view()).processes] == [first.id]
    await first.close()


async def test_an_experiment_and_its_end_are_followed(db, versions) -> None:
    backend = ScriptedBackend(model_version="v1")
    follower = serving(db, backend)
    _, experiments = shell(db)
    await experiments.start("cli", "v2", 0.5)
    state = await follower.round()
    assert state.candidate == "v2" and backend.resident_versions == ("v1", "v2")
    assert state.matches and not (await Fleet(db, FAST).view()).behind
    await experiments.stop("cli")
    state = await follower.round()
    assert state.candidate is None and backend.resident_versions == ("v1",)
    await follower.close()


async def test_a_version_that_cannot_load_here_is_said_once_and_the_old_one_serves(
    db, versions, caplog
) -> None:
    backend = Unloadable({"v2"}, model_version="v1")
    follower = serving(db, backend)
    registry, _ = shell(db)
    await registry.use("cli", "v2", force=True)
    with caplog.at_level(logging.INFO, logger="admin.follow"):
        for _ in range(4):
            state = await follower.round()
    assert backend.model_version == "v1" and not state.matches
    assert state.problem is not None and "cannot load v2" in state.problem
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "logged once, not every round"
    await asyncio.sleep(3 * FAST.follow_interval_s)  # past the lag bound (two rounds)
    (process,) = (await Fleet(db, FAST).view()).processes
    assert process.lagging and process.served_version == "v1" and "v2" in (process.problem or "")

    backend.missing.clear()  # the folder was copied to this machine
    follower._failed.clear()  # (its retry comes after RETRY_FAILED_S)
    with caplog.at_level(logging.INFO, logger="admin.follow"):
        state = await follower.round()
    assert state.matches and backend.model_version == "v2" and state.problem is None
    assert "serving what the database says again: v2" in caplog.text
    await follower.close()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_process_that_stopped_renewing_is_not_live(tmp_path, database) -> None:
    if database == "postgresql" and not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("TEST_DATABASE_URL not set")
    url = fresh_postgres() if database == "postgresql" else f"sqlite:///{tmp_path / 'p.db'}"
    db = Database(url)
    upgrade(db.engine)
    processes = ProcessRepository(db)
    beat = ProcessBeat("h:1:a", "h", 1, "web", "", "v1", None, None, 0.5)
    processes.beat(beat)
    processes.beat(replace(beat, id="h:2:b", pid=2))
    processes.beat(replace(beat, served_version="v2"))  # a renewal updates the row
    assert [(p.pid, p.served_version) for p in processes.live()] == [(1, "v2"), (2, "v1")]
    with db.session() as session:  # process 2 was killed: its row ages
        session.execute(
            update(ServingProcess)
            .where(ServingProcess.id == "h:2:b")
            .values(last_seen=utcnow() - timedelta(seconds=60))
        )
    assert [p.pid for p in processes.live()] == [1]
    processes.leave("h:1:a")
    assert processes.live() == []
    db.dispose()


async def test_a_database_that_fails_every_round_is_logged_once(db, versions, caplog) -> None:
    backend = ScriptedBackend(model_version="v1")
    follower = serving(db, backend)
    broken = follower.registry.follow

    async def unreachable(avoid: object = ()) -> None:
        raise ConnectionError("the database server went away")

    follower.registry.follow = unreachable  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="admin.follow"):
        for _ in range(3):
            await follower.round_logged()  # a failed round never ends the loop
        follower.registry.follow = broken  # type: ignore[method-assign]
        await follower.round_logged()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "following the database failed" in errors[0].getMessage()
    assert "following the database works again" in caplog.text
    await follower.close()


async def test_an_experiment_won_in_another_process_is_served_here(db, versions) -> None:
    metrics = {"eval_loss": 3.0, "baseline_version": "v1", "baseline_eval_loss": 3.1}
    versions.add("v3", "/models/v3", "bootstrap", parent="v1", metrics=metrics)  # passes the gate
    deciding, here = ScriptedBackend(model_version="v1"), ScriptedBackend(model_version="v1")
    quick = ABConfig(promote_probability=0.95, retire_probability=0.95, min_ratings=10)
    registry = Registry(db, 0.02, deciding)
    decider = Experiments(db, registry, deciding, quick, serves=True)
    follower = serving(db, here)
    status = await decider.start("owner", "v3", 0.5)
    assert (await follower.round()).candidate == "v3" and "v3" in here.resident_versions

    rate(db, status.id, "candidate", up=20, down=0)
    rate(db, status.id, "control", up=2, down=18)
    ended = await decider.evaluate()  # the rule decides in the other process
    assert ended is not None and ended.status == "promoted" and deciding.model_version == "v3"
    state = await follower.round()
    assert (state.served, state.active, state.candidate, state.matches) == ("v3", "v3", None, True)
    assert here.swaps == [("v3", "/models/v3")] and here.resident_versions == ("v3",)
    await follower.close()


async def test_on_postgresql_a_change_wakes_the_process_at_once() -> None:
    """LISTEN/NOTIFY: with a minute between polls, a shell's `models use` is served in
    about a second."""
    if not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("TEST_DATABASE_URL not set")
    db = Database(fresh_postgres())
    upgrade(db.engine)
    repo = ModelVersionRepository(db)
    for name in ("v1", "v2"):
        repo.add(name, f"/models/{name}", "bootstrap")
    repo.activate("v1")
    backend = ScriptedBackend(model_version="v1")
    follower = serving(db, backend, FleetConfig(follow_interval_s=60.0))
    await follower.start()
    try:
        await asyncio.sleep(0.5)  # the listener connects
        registry, experiments = shell(db)
        await registry.use("cli", "v2", force=True)
        for _ in range(100):
            if backend.model_version == "v2":
                break
            await asyncio.sleep(0.05)
        assert backend.model_version == "v2"
        await experiments.start("cli", "v1", 0.5)  # an experiment wakes it too
        for _ in range(100):
            if backend.resident_versions == ("v2", "v1"):
                break
            await asyncio.sleep(0.05)
        assert backend.resident_versions == ("v2", "v1")
    finally:
        await follower.close()
        db.dispose()
