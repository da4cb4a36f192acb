"""Several bot processes on one database: only the schedule lease holder fires the retrain
schedule (and resumes interrupted runs); a standby takes over when the holder goes."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC
from pathlib import Path

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from admin.schedule_lease import SCHEDULE_LEASE
from admin.training import Training
from model.backends.fake import ScriptedBackend
from storage import Database, LeaseRepository, ModelVersionRepository, upgrade
from tests.admin.conftest import build_services

FIRE_TIMEOUT_S = 20


def lease_databases(tmp_path: Path) -> list[str]:
    urls = [f"sqlite:///{tmp_path / 'lease.db'}"]
    if os.environ.get("TEST_DATABASE_URL"):
        urls.append(os.environ["TEST_DATABASE_URL"])
    return urls


def test_the_lease_is_held_by_one_holder_until_released_or_expired(tmp_path: Path):
    for url in lease_databases(tmp_path):
        db = Database(url)
        upgrade(db.engine)
        leases = LeaseRepository(db)
        name = f"test-{os.getpid()}"
        assert leases.acquire(name, "a", ttl_s=60)
        assert not leases.acquire(name, "b", ttl_s=60)
        assert leases.acquire(name, "a", ttl_s=60)  # renewal
        assert leases.holder(name) == "a"
        leases.release(name, "b")  # only the holder can give it up
        assert leases.holder(name) == "a"
        leases.release(name, "a")
        assert leases.holder(name) is None
        assert leases.acquire(name, "b", ttl_s=-1)  # taken, but already expired
        assert leases.acquire(name, "a", ttl_s=60)  # so another may take it
        leases.release(name, "a")
        db.dispose()


class Process:
    """One bot process's admin services on its own connection to the shared database."""

    def __init__(self, url: str, model_dir: Path) -> None:
        self.db = Database(url)
        self.services = build_services(self.db, model_dir, ScriptedBackend(model_version="t"))
        assert isinstance(self.services.training, Training)
        self.training = self.services.training
        self.fired = asyncio.Event()

        async def fire(line: str | None) -> None:
            self.fired.set()

        self.training.scheduler._on_fire = fire

    async def lease_round(self) -> None:
        """What the renewal task does every `schedule_lease_renew_s`."""
        await self.training.lease.renew()

    async def close(self) -> None:
        await self.services.close()
        self.db.dispose()


@pytest.fixture
async def two_processes(tmp_path: Path, model_dir: Path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    setup = Database(url)
    upgrade(setup.engine)
    versions = ModelVersionRepository(setup)
    versions.add("tiny-1", str(model_dir / "tiny-1"), "bootstrap")
    versions.activate("tiny-1")
    setup.dispose()
    processes = [Process(url, model_dir), Process(url, model_dir)]
    yield processes
    for process in processes:
        await process.close()


async def test_only_the_holder_fires_and_a_standby_takes_over(two_processes):
    first, second = two_processes
    await first.training.start_background()
    await second.training.start_background()
    assert first.training.lease.leading and not second.training.lease.leading
    holder = await first.db.run(first.training.lease.leases.holder, SCHEDULE_LEASE)
    assert holder == first.training.lease.holder

    # an admin changes the schedule through the standby (say, another Discord shard)
    await second.training.scheduler.set_trigger(IntervalTrigger(seconds=1, timezone=UTC))
    await first.lease_round()  # the holder renews and re-reads the stored schedule
    await asyncio.wait_for(first.fired.wait(), FIRE_TIMEOUT_S)
    await second.lease_round()
    assert not second.training.lease.leading and not second.fired.is_set()

    await first.close()  # the holder stops and gives the lease up
    await second.lease_round()
    assert second.training.lease.leading
    await asyncio.wait_for(second.fired.wait(), FIRE_TIMEOUT_S)
