"""Following the database: a serving process (`gpt2bot run`) serves what the database says,
whichever process or command changed it, and records what it serves.

Every `FOLLOW_INTERVAL_S` one round:
1. the active version: when it is not the one serving here, the registry hot-swaps it in
   (`RegistryService.follow`: the engine's normal swap, running requests finish on the old
   version);
2. the running A/B experiment: its candidate is loaded resident, the candidate of one that
   ended is unloaded (`ExperimentService.follow`);
3. this process's row in the fleet is renewed (`storage.ProcessRepository.beat`): host, pid,
   platform, shards, what it serves, and why it does not serve what it should.
A version that cannot be loaded here (its folder missing from this machine's MODEL_DIR, a
broken one) is tried again only every `RETRY_FAILED_S`; meanwhile this process serves what it
has and says so: one log line when the problem starts and one when it ends, `/readyz`,
`/metrics` and its fleet row. A cheap poll works on every database; on PostgreSQL a change
also wakes the rounds at once (`LISTEN`, on a thread and connection of its own: a listener that
fails is logged once and tried again each interval, and the poll goes on meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from admin.base import ExperimentService, RegistryService
from admin.config import FleetConfig
from model.backends.base import Backend, ServesSeveralVersions
from storage import Database, ProcessBeat, ProcessRepository

log = logging.getLogger(__name__)

RETRY_FAILED_S = 60.0  # a version that failed to load is tried again this often, not each round


class FollowFailed(Exception):
    """This process could not load the version the database names (`version`); it keeps
    serving what it has. The message says why."""

    def __init__(self, version: str, reason: str) -> None:
        super().__init__(f"cannot load {version}: {reason}")
        self.version = version


@dataclass(frozen=True)
class ProcessIdentity:
    """What a serving process is, as the fleet shows it."""

    platform: str  # discord|slack|web|a plugin's name
    shards: str = ""  # DISCORD_SHARDS as set, "" when not sharded


@dataclass(frozen=True)
class FollowState:
    """What this process serves against what the database said at the last round."""

    served: str  # the version serving new requests here
    active: str | None = None  # the database's active version (None before the first round)
    candidate: str | None = None  # the running experiment's candidate
    candidate_resident: bool = True  # ... is loaded here (True when none runs)
    problem: str | None = None  # why this process does not serve the database's choice
    rounds: int = 0

    @property
    def matches(self) -> bool:
        """Whether this process serves what the database says (True before the first round)."""
        return self.rounds == 0 or (self.served == self.active and self.candidate_resident)


class Follower:
    """Runs the rounds of one serving process; `state` is what `/readyz` and `/metrics` show."""

    def __init__(
        self,
        db: Database,
        registry: RegistryService,
        experiments: ExperimentService,
        backend: Backend,
        config: FleetConfig,
        identity: ProcessIdentity,
    ) -> None:
        self.db, self.registry, self.experiments = db, registry, experiments
        self.backend, self.config, self.identity = backend, config, identity
        self.processes = ProcessRepository(db)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.state = FollowState(served=backend.model_version)
        self._failed: dict[str, float] = {}  # version -> when it last failed to load here
        self._told: str | None = None  # the problem logged last (each is logged once)
        self._task: asyncio.Task[None] | None = None
        self._round = asyncio.Lock()  # the loop's rounds and a fleet view's, one at a time
        self._wake = asyncio.Event()  # set by the PostgreSQL listener: a round now
        self._stop = threading.Event()  # tells the listener thread to end
        self._listener: threading.Thread | None = None
        self._failing: str | None = None  # the error of the last round that failed, if any

    @property
    def started(self) -> bool:
        return self._task is not None

    async def start(self) -> None:
        """One round now (this process appears in the fleet at once), then one per interval."""
        await self.round_logged()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._rounds())
        self._task.add_done_callback(_ended)
        if self.processes.can_listen():

            def wake() -> None:  # from the listener thread
                loop.call_soon_threadsafe(self._wake.set)

            self._listener = threading.Thread(
                target=self._listen, args=(wake,), name="gpt2bot-listen", daemon=True
            )
            self._listener.start()

    async def close(self) -> None:
        """Stop following and leave the fleet (a process killed leaves by ageing out)."""
        self._stop.set()
        if self._listener is not None:
            await asyncio.to_thread(self._listener.join)  # within LISTEN_WAKE_S
            self._listener = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.state.rounds:
            try:
                await self.db.run(self.processes.leave, self.id)
            except Exception:
                log.exception("could not remove this process from the fleet table")

    async def _rounds(self) -> None:
        while True:
            # the interval passes, or the listener says something changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.follow_interval_s)
            self._wake.clear()
            await self.round_logged()

    def _listen(self, wake: Callable[[], None]) -> None:
        """The listener thread: LISTEN until closed; a failure is logged once, then retried."""
        told = False
        while not self._stop.is_set():
            try:
                self.processes.listen(wake, self._stop)
            except Exception:
                if not told:
                    log.exception(
                        "cannot LISTEN for changes; polling every %g s",
                        self.config.follow_interval_s,
                    )
                    told = True
                self._stop.wait(self.config.follow_interval_s)

    async def round_logged(self) -> None:
        """A round whose failure is logged (with its traceback once, while it repeats)."""
        try:
            await self.round()
        except Exception as error:  # the database unreachable: the next round tries again
            seen, self._failing = self._failing, f"{type(error).__name__}: {error}"
            every = self.config.follow_interval_s
            if seen == self._failing:
                log.debug("following the database still fails: %s", error)
            else:
                log.exception("following the database failed; trying again every %g s", every)
            return
        if self._failing is not None:
            log.info("following the database works again")
            self._failing = None

    async def round(self) -> FollowState:
        """Follow the active version and the experiment, then record what this serves."""
        async with self._round:
            return await self._follow()

    async def _follow(self) -> FollowState:
        active, problem = await self._follow_active()
        candidate = await self.experiments.follow()
        resident = candidate is None or candidate in self._resident()
        if not resident and problem is None:
            problem = f"the A/B candidate {candidate} is not loaded here (the log says why)"
        served = self.backend.model_version
        self.state = FollowState(
            served, active, candidate, resident, problem, self.state.rounds + 1
        )
        self._tell(problem)
        beat = ProcessBeat(
            id=self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            platform=self.identity.platform,
            shards=self.identity.shards,
            served_version=served,
            candidate_version=candidate if candidate is not None and resident else None,
            problem=problem,
            interval_s=self.config.follow_interval_s,
        )
        await self.db.run(self.processes.beat, beat)
        return self.state

    async def _follow_active(self) -> tuple[str | None, str | None]:
        """The database's active version, and why it does not serve here (or None)."""
        now = time.monotonic()
        avoid = {v for v, at in self._failed.items() if now - at < RETRY_FAILED_S}
        try:
            active = await self.registry.follow(avoid)
        except FollowFailed as error:
            self._failed[error.version] = now
            return error.version, f"{error}; serving {self.backend.model_version} meanwhile"
        if active is None:
            return None, None
        if active.name in avoid and active.name != self.backend.model_version:
            return active.name, self.state.problem  # still the reason it failed last
        self._failed.pop(active.name, None)
        return active.name, None

    def _resident(self) -> tuple[str, ...]:
        if isinstance(self.backend, ServesSeveralVersions):
            return self.backend.resident_versions
        return (self.backend.model_version,)

    def _tell(self, problem: str | None) -> None:
        """Log a problem once when it starts, and once when it is over."""
        if problem == self._told:
            return
        if problem is not None:
            log.warning("not serving what the database says: %s", problem)
        else:
            log.info("serving what the database says again: %s", self.state.served)
        self._told = problem


def _ended(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("following the database stopped", exc_info=task.exception())
