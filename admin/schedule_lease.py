"""The schedule lease: of several gpt2bot processes on one database, only the holder of the
`retrain-schedule` lease fires the retrain schedule and resumes interrupted runs; the others
stand by with their scheduler paused, and one of them takes over when the holder goes.

The lease is a row in the `leases` table (`storage/leases.py`), renewed every
`schedule_lease_renew_s` and expiring after `schedule_lease_ttl_s`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from admin.config import LearningConfig
from admin.scheduler import RetrainScheduler
from storage import Database, LeaseRepository

log = logging.getLogger(__name__)

SCHEDULE_LEASE = "retrain-schedule"


class ScheduleLease:
    """Holds (or waits for) the schedule lease and pauses or resumes `scheduler` to match.
    `on_lead` is called each time this process becomes the holder."""

    def __init__(
        self,
        db: Database,
        config: LearningConfig,
        scheduler: RetrainScheduler,
        on_lead: Callable[[], Awaitable[None]],
    ) -> None:
        self.db, self.config, self.scheduler = db, config, scheduler
        self._on_lead = on_lead
        self.leases = LeaseRepository(db)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.leading = False  # this process holds the schedule lease
        self._task: asyncio.Task[None] | None = None

    async def start(self, cron: str | None) -> None:
        """Start the schedule (paused unless the lease is ours) and keep renewing the lease."""
        held = await self._hold()
        await self.scheduler.start(cron, self.config.min_schedule_minutes, paused=not held)
        await self._lead(held)
        self._task = asyncio.create_task(self._keep())

    async def renew(self) -> None:
        """One renewal round: take or keep the lease, then lead or stand by accordingly."""
        await self._lead(await self._hold())

    async def close(self) -> None:
        """Stop renewing and give the lease up, so that a standby process takes over at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.leading:
            await self.db.run(self.leases.release, SCHEDULE_LEASE, self.holder)
            self.leading = False

    async def _hold(self) -> bool:
        try:
            ttl = self.config.schedule_lease_ttl_s
            return await self.db.run(self.leases.acquire, SCHEDULE_LEASE, self.holder, ttl)
        except Exception:  # unable to renew: another process may take over, so stand by
            log.exception("cannot renew the schedule lease")
            return False

    async def _lead(self, held: bool) -> None:
        if held and not self.leading:
            self.leading = True
            log.info("this process runs the retrain schedule (lease holder %s)", self.holder)
            self.scheduler.resume()
            await self._on_lead()
        elif not held and self.leading:
            self.leading = False
            log.warning("another gpt2bot process took the retrain schedule; standing by")
            self.scheduler.pause()
        elif held:
            self.scheduler.wakeup()  # pick up schedule changes made in other processes

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.config.schedule_lease_renew_s)
            try:
                await self.renew()
            except Exception:  # keep renewing whatever one round did
                log.exception("the schedule lease round failed")
