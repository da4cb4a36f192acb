"""A/B experiments (the `ExperimentService`): the active version (control) against a candidate,
decided on live ratings by `admin.ab_rule`.

- Members are assigned stickily: a hash of the experiment id, platform and user id against the
  candidate's share, so a member sees one arm for the whole experiment (and a new experiment
  draws afresh).
- The experiment lives in the database (`storage.ExperimentRepository`), so it survives a
  restart or `kill -9`: a serving process loads the candidate resident again at start-up
  (`resume`). One runs per model line: the shared line's over every member served the shared
  version, a server line's (admin/lines.py) over that server's members only, between the
  line's active version and another of its versions (bot/lines.py picks the arm).
- Every serving process follows the running experiments (`follow`, each FOLLOW_INTERVAL_S:
  admin/follow.py), and notices one on its next request once `AB_REFRESH_SECONDS` passed;
  until the candidate is resident, the active version serves its arm (the generation records
  the version that really served it).
- After each rating `evaluate` applies the rule: a confident win promotes the candidate
  through the registry (gate and hot-swap), a loss retires it, the maximum sample ends it as
  "no difference"; the loser is unloaded (a line's winner becomes the line's active version).
  `finish` ends the row only if it still runs, so of several processes exactly one acts on a
  decision.
Every start, stop and decision is written to the audit log (platform "ab"; a line's with the
scope `line` and the server key).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from admin.ab_rule import Decision, Ruling, decide
from admin.base import RegistryService
from admin.config import ABConfig
from admin.errors import ExperimentRefused, no_version
from admin.experiment_status import outcome_of, running_refusal, share_point, status_of, tally
from admin.results import Assignment, ExperimentStatus
from model.backends.base import Backend, ServesSeveralVersions
from storage import (
    ArmCounts,
    AuditRepository,
    Database,
    ExperimentRecord,
    ExperimentRepository,
    ExperimentRunning,
    ModelVersionRepository,
)

log = logging.getLogger(__name__)

AB_ACTOR = "ab-rule"  # the audit log's actor for the rule's own decisions
AUDIT_PLATFORM = "ab"
ENDINGS = {
    Ruling.PROMOTE: "promoted",
    Ruling.RETIRE: "retired",
    Ruling.NO_DIFFERENCE: "no_difference",
}
THRESHOLDS = ("promote_probability", "retire_probability", "min_ratings", "max_ratings")


class Experiments:
    """The `ExperimentService` over the database, the registry and the serving backend.
    `serves`: this process serves generations (`gpt2bot run`); one-shot commands only record
    experiments, which the serving processes pick up."""

    def __init__(
        self,
        db: Database,
        registry: RegistryService,
        backend: Backend,
        config: ABConfig,
        *,
        serves: bool,
        min_account_days: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db, self.registry, self.backend, self.config = db, registry, backend, config
        self.serves = serves
        self.min_account_days = min_account_days  # RATING_MIN_ACCOUNT_DAYS: see storage
        self.repository = ExperimentRepository(db)
        self.versions = ModelVersionRepository(db)
        self.audit = AuditRepository(db)
        self._clock = clock
        self._cached: dict[str | None, ExperimentRecord] = {}  # running ones, by line
        self._checked_at = -math.inf
        self._deciding, self._loading = asyncio.Lock(), asyncio.Lock()  # decisions, loads
        self._tasks: set[asyncio.Task[None]] = set()
        self._failed: set[int] = set()  # experiments whose candidate could not load here

    # -- what platforms and the CLI call ------------------------------------------------------
    async def start(
        self, actor: str, version: str, share: float | None = None, line: str | None = None
    ) -> ExperimentStatus:
        share = self.config.share if share is None else share
        if not 0.0 < share < 1.0:
            raise ExperimentRefused(
                f"The candidate's share of members must be between 0 and 1 (e.g. 0.5), "
                f"not {share:g}. Nothing was started."
            )
        candidate = await self.db.run(self.versions.get, version)
        if candidate is None:
            raise no_version(version)
        if candidate.line != line:  # a server's data must not reach other servers
            raise ExperimentRefused(
                f"{version} belongs to {candidate.line}'s model line only."
                if candidate.line is not None
                else f"{version} is not a version of {line}'s line (see `line show`)."
            )
        active = await self.db.run(self.versions.active, line)
        if active is None:
            raise ExperimentRefused(
                "There is no active version to compare with yet: start the bot once "
                "(`gpt2bot run`) so it prepares one."
                if line is None
                else f"{line}'s line has no active version to compare with yet (`line use`)."
            )
        if active.name == version:
            raise ExperimentRefused(
                f"{version} is the active version already: an experiment compares it with "
                "another version (see `models list`)."
            )
        running = await self.db.run(self.repository.running, line)
        if running is not None:
            raise running_refusal(running)
        multi = self._several()
        if self.serves and multi is None:
            raise ExperimentRefused(
                "This generation backend keeps one version loaded, so it cannot serve an A/B "
                "experiment (the local backend can). Nothing was started."
            )
        if multi is not None:
            try:
                await multi.load_version(candidate.name, candidate.path)
            except Exception:
                log.exception("could not load %s for an experiment", version)
                raise ExperimentRefused(
                    f"{version} could not be loaded (the log has the details): check its "
                    "folder with `models list`. Nothing was started."
                ) from None
        rule = self.config.snapshot()
        try:
            record = await self.db.run(
                self.repository.start, active.name, version, share, rule, actor, line
            )
        except ExperimentRunning:  # another process started one at the same moment
            await self._unload(version)
            running = await self.db.run(self.repository.running, line)
            if running is None:
                raise ExperimentRefused("Another experiment just ended: try again.") from None
            raise running_refusal(running) from None
        self._remember_one(line, record)
        detail = {"experiment": record.id, "control": active.name, "candidate": version}
        await self._audit(actor, "ab start", {**detail, "share": share, "rule": rule}, line)
        log.info("%s started experiment #%d: %s against %s", actor, record.id, active.name, version)
        return await self._status_of(record)

    async def status(self, line: str | None = None) -> ExperimentStatus | None:
        record = await self.db.run(self.repository.latest, line)
        return None if record is None else await self._status_of(record)

    async def stop(self, actor: str, line: str | None = None) -> ExperimentStatus:
        running = await self.db.run(self.repository.running, line)
        if running is None:
            status = "ab status" if line is None else "line ab status"
            raise ExperimentRefused(
                f"No experiment is running, so there is nothing to stop (`{status}` shows the "
                "last one)."
            )
        counts, decision = await self._decision(running)
        outcome = outcome_of(counts, decision, f"stopped by {actor}")
        ended = await self.db.run(self.repository.finish, running.id, "stopped", actor, outcome)
        self._remember_one(line, None)
        if ended is None:  # another process decided it first: report what it did, undo nothing
            raise ExperimentRefused(
                f"Experiment #{running.id} ended just now without you; `ab status` shows how."
            )
        await self._unload(running.candidate_version)
        await self._audit(actor, "ab stop", {"experiment": running.id, **outcome}, line)
        return await self._status_of(ended)

    async def candidate(self) -> str | None:
        experiment = (await self._current()).get(None)
        return None if experiment is None else experiment.candidate_version

    async def arm_for(
        self, platform: str, user_id: str, line: str | None = None
    ) -> Assignment | None:
        experiment = (await self._current()).get(line)
        if experiment is None:
            return None
        point = share_point(experiment.id, platform, user_id)
        arm = "candidate" if point < experiment.candidate_share else "control"
        return Assignment(
            experiment.id, arm, experiment.control_version, experiment.candidate_version
        )

    async def evaluate(self, experiment_id: int | None = None) -> ExperimentStatus | None:
        """The ended experiment's status when the rule decided now; None otherwise
        (`experiment_id` None: the shared line's)."""
        cached = await self._current()  # cached: ratings outside experiments cost no query
        if experiment_id is None:
            experiment_id = None if None not in cached else cached[None].id
        if experiment_id not in {record.id for record in cached.values()}:
            return None
        async with self._deciding:  # one decision at a time in this process
            running = await self.db.run(self.repository.get, experiment_id)
            if running is None or not running.running:
                return None
            counts, decision = await self._decision(running)
            if decision.ruling is Ruling.CONTINUE:
                return None
            return await self._conclude(running, counts, decision)

    async def resume(self) -> None:
        if (candidate := await self.follow()) is not None:
            log.info("an A/B experiment is running: its candidate %s is loaded", candidate)

    async def follow(self) -> str | None:
        """Load the running experiments' candidates here now (or unload ended ones')."""
        before = self._cached
        running = await self.db.run(self.repository.every_running)
        self._remember(running)
        now = {record.id for record in running}
        for ended in (r for r in before.values() if r.id not in now):
            await self._unload(ended.candidate_version)
        for record in running:
            await self._load(record)
        shared = self._cached.get(None)
        return None if shared is None else shared.candidate_version

    async def settled(self) -> None:
        """Until the candidate loads and unloads begun so far are done (tests, benchmarks)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the rule's decisions -----------------------------------------------------------------
    async def _decision(self, record: ExperimentRecord) -> tuple[dict[str, ArmCounts], Decision]:
        counts = await self.db.run(self.repository.counts, record.id, self.min_account_days)
        rule = {k: record.rule[k] for k in THRESHOLDS if k in record.rule}
        config = replace(self.config, **rule)  # the thresholds it started with
        control, candidate = tally(counts["control"]), tally(counts["candidate"])
        return counts, decide(control, candidate, config)

    async def _conclude(
        self, running: ExperimentRecord, counts: dict[str, ArmCounts], decision: Decision
    ) -> ExperimentStatus | None:
        ending = ENDINGS[decision.ruling]
        outcome = outcome_of(counts, decision, decision.reason)
        ended = await self.db.run(self.repository.finish, running.id, ending, AB_ACTOR, outcome)
        if ended is None:
            return None  # another process decided first and acts on it
        line = running.line
        self._remember_one(line, None)
        candidate = running.candidate_version
        detail = {"experiment": running.id, "candidate": candidate, **outcome}
        if decision.ruling is Ruling.PROMOTE:
            try:
                await self.registry.use(AB_ACTOR, candidate)
            except Exception as error:  # the held-out loss gate, or a broken folder
                log.warning(
                    "experiment #%d: %s won but was not promoted: %s", ended.id, candidate, error
                )
                refused = {"refused": str(error)}
                ended = await self.db.run(self.repository.amend, ended.id, "stopped", refused)
                await self._unload(candidate)
                await self._audit(AB_ACTOR, "ab promotion refused", {**detail, **refused}, line)
                return await self._status_of(ended)
        elif decision.ruling is Ruling.RETIRE:
            await self.db.run(self.versions.retire, candidate)
        if decision.ruling is not Ruling.PROMOTE or line is None:  # a line's winner serves it
            await self._unload(candidate)
        await self._audit(AB_ACTOR, f"ab {ending}", detail, line)
        log.info("experiment #%d ended: %s (%s)", ended.id, ending, decision.reason)
        return await self._status_of(ended)

    async def _status_of(self, record: ExperimentRecord) -> ExperimentStatus:
        if record.running:
            counts, decision = await self._decision(record)
            ruling, p, reason = decision.ruling, decision.probability, decision.reason
        else:  # the numbers it ended on
            outcome = record.outcome or {}
            counts = {arm: ArmCounts(**outcome.get(arm, {})) for arm in ("control", "candidate")}
            ruling = outcome.get("decision", Ruling.CONTINUE)
            p, reason = outcome.get("probability", 0.5), outcome.get("reason", record.status)
            if "refused" in outcome:
                reason = f"{reason}; not promoted: {outcome['refused']}"
        return await asyncio.to_thread(status_of, record, counts, ruling, p, reason)

    # -- which experiment this process serves -------------------------------------------------
    async def _current(self) -> dict[str | None, ExperimentRecord]:
        """The running experiments by line, read again once `refresh_s` passed (cached
        between); candidates of new ones load, and of ended ones unload, in the background."""
        if self._clock() - self._checked_at >= self.config.refresh_s:
            before = self._cached
            running = await self.db.run(self.repository.every_running)
            self._remember(running)
            now = {record.id for record in running}
            for ended in (r for r in before.values() if r.id not in now):
                self._spawn(self._unload(ended.candidate_version))
            known = {record.id for record in before.values()}
            for record in (r for r in running if r.id not in known):
                self._spawn(self._load(record))
        return self._cached

    def _remember(self, running: list[ExperimentRecord]) -> None:
        self._cached = {record.line: record for record in running}
        self._checked_at = self._clock()

    def _remember_one(self, line: str | None, record: ExperimentRecord | None) -> None:
        """This process just started (or ended) `line`'s experiment: no need to read again."""
        cached = {k: v for k, v in self._cached.items() if k != line}
        self._cached = cached if record is None else {**cached, line: record}

    def _several(self) -> ServesSeveralVersions | None:
        return self.backend if isinstance(self.backend, ServesSeveralVersions) else None

    async def _load(self, record: ExperimentRecord) -> None:
        multi = self._several()
        if not self.serves or record.id in self._failed:
            return
        if multi is None:
            self._failed.add(record.id)
            log.warning(
                "experiment #%d cannot be served here: this backend keeps one version loaded, "
                "so every member gets the active version",
                record.id,
            )
            return
        async with self._loading:  # the request path and the follower may both ask
            version = await self.db.run(self.versions.get, record.candidate_version)
            if version is None or version.name in multi.resident_versions:
                return
            try:
                await multi.load_version(version.name, version.path)
            except Exception:
                self._failed.add(record.id)
                log.exception("experiment #%d: could not load %s", record.id, version.name)

    async def _unload(self, version: str) -> None:
        multi = self._several()
        if multi is None or version == self.backend.model_version:
            return
        if version in multi.resident_versions:
            await multi.unload_version(version)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("A/B background work failed", exc_info=task.exception())

    async def _audit(
        self, actor: str, action: str, detail: dict[str, Any], line: str | None = None
    ) -> None:
        """A line's experiment: the scope `line` and the server key (admin/lines.py)."""
        scope, record = ("global", None) if line is None else ("line", line)
        await self.db.run(
            self.audit.record, actor, AUDIT_PLATFORM, action, True, detail, scope, record
        )
