"""The fleet as the database sees it (the `FleetService`): what the database says every
process should serve (the active version, a running A/B experiment's candidate) and what each
live `gpt2bot run` process reported it serves (`storage.ProcessRepository`).

A process is lagging when it has served something other than the database's choice for longer
than `LAG_ROUNDS` of its own follow rounds, counted from the later of the change (the
version's activation, the experiment's start or end) and the process's own start. Times come
from each process's clock: keep the clocks in sync (NTP).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from admin.config import FleetConfig
from admin.fleet_view import FleetView, ProcessStatus
from admin.follow import Follower
from storage import (
    Database,
    ExperimentRecord,
    ExperimentRepository,
    ModelVersionRecord,
    ModelVersionRepository,
    ProcessRecord,
    ProcessRepository,
    as_utc,
)

LAG_ROUNDS = 2  # one round to notice a change, one more to load the version
WAIT_POLL_S = 0.25  # `wait` looks at the fleet this often


@dataclass(frozen=True)
class _Snapshot:
    active: ModelVersionRecord | None
    experiment: ExperimentRecord | None  # the running one, else the latest
    processes: list[ProcessRecord]

    def changed_at(self) -> datetime | None:
        """When the database's choice last changed (a version activated, an A/B start or end)."""
        moments = [self.active.activated_at] if self.active is not None else []
        if self.experiment is not None:
            moments.append(self.experiment.ended_at or self.experiment.started_at)
        return max((as_utc(m) for m in moments if m is not None), default=None)


class Fleet:
    """The `FleetService` over the database."""

    def __init__(self, db: Database, config: FleetConfig) -> None:
        self.db, self.config = db, config
        self.versions = ModelVersionRepository(db)
        self.experiments = ExperimentRepository(db)
        self.processes = ProcessRepository(db)
        # this process's follower (`App.open` sets it): a view taken right after a switch
        # made here shows this process as it is now, not as its last round recorded it
        self.local: Follower | None = None

    def _read(self) -> _Snapshot:
        return _Snapshot(self.versions.active(), self.experiments.latest(), self.processes.live())

    async def view(self) -> FleetView:
        if self.local is not None and self.local.started:
            await self.local.round_logged()
        snapshot = await self.db.run(self._read)
        experiment = snapshot.experiment
        candidate = experiment.candidate_version if experiment and experiment.running else None
        active = snapshot.active.name if snapshot.active is not None else None
        changed, now = snapshot.changed_at(), datetime.now(UTC)
        statuses = []
        for p in snapshot.processes:
            differs = (p.served_version, p.candidate_version) != (active, candidate)
            since = max(p.started_at, changed) if changed is not None else p.started_at
            lagging = differs and (now - since).total_seconds() > LAG_ROUNDS * p.interval_s
            statuses.append(ProcessStatus.of(p, lagging))
        bound = max([p.interval_s for p in snapshot.processes], default=0.0)
        bound = bound or self.config.follow_interval_s
        return FleetView(active, candidate, tuple(statuses), bound, changed)

    async def wait(self, timeout_s: float) -> FleetView:
        """Ends early when every process still behind tried since the change and failed."""
        deadline = time.monotonic() + timeout_s
        view = await self.view()
        while not view.settled() and time.monotonic() < deadline:
            await asyncio.sleep(WAIT_POLL_S)
            view = await self.view()
        return view
