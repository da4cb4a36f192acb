"""A/B experiments (the `ExperimentService`): the active version (control) against a candidate,
decided on live ratings by `admin.ab_rule`.

- Members are assigned stickily: a hash of the experiment id, platform and user id against the
  candidate's share, so a member sees one arm for the whole experiment (and a new experiment
  draws afresh).
- The experiment lives in the database (`storage.ExperimentRepository`), so it survives a
  restart or `kill -9`: a serving process loads the candidate resident again at start-up
  (`resume`). Only one runs at a time.
- Every serving process follows the running experiment (`follow`, each FOLLOW_INTERVAL_S:
  admin/follow.py), and notices one on its next request once `AB_REFRESH_SECONDS` passed;
  until the candidate is resident, the active version serves its arm (the generation records
  the version that really served it).
- After each rating `evaluate` applies the rule: a confident win promotes the candidate
  through the registry (gate and hot-swap), a loss retires it, the maximum sample ends it as
  "no difference"; the loser is unloaded. `finish` ends the row only if it still runs, so of
  several processes exactly one acts on a decision.
Every start, stop and decision is written to the audit log (platform "ab").
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, replace
from typing import Any

from admin.ab_rule import Decision, Ruling, Tally, decide, interval
from admin.base import RegistryService
from admin.config import ABConfig
from admin.errors import ExperimentRefused, no_version
from admin.results import ArmStatus, Assignment, ExperimentStatus
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
HASH_SPACE = 2.0**64
ENDINGS = {
    Ruling.PROMOTE: "promoted",
    Ruling.RETIRE: "retired",
    Ruling.NO_DIFFERENCE: "no_difference",
}
THRESHOLDS = ("promote_probability", "retire_probability", "min_ratings", "max_ratings")


def share_point(experiment_id: int, platform: str, user_id: str) -> float:
    """Where a member falls in [0, 1) for an experiment: stable across processes and
    restarts (unlike `hash()`), uniform, and drawn afresh for each experiment."""
    digest = hashlib.sha256(f"{experiment_id}:{platform}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / HASH_SPACE


def _tally(counts: ArmCounts) -> Tally:
    return Tally(counts.up, counts.down)


def _arm(arm: str, version: str, share: float, counts: ArmCounts) -> ArmStatus:
    up_share = counts.up / counts.ratings if counts.ratings else None
    return ArmStatus(
        arm=arm,
        version=version,
        share=share,
        generations=counts.generations,
        ratings=counts.ratings,
        up=counts.up,
        down=counts.down,
        up_share=up_share,
        interval=interval(_tally(counts)),
    )


def _status(
    record: ExperimentRecord, counts: dict[str, ArmCounts], ruling: str, p: float, reason: str
) -> ExperimentStatus:
    """Blocking (the intervals take milliseconds): called in a thread."""
    share = record.candidate_share
    return ExperimentStatus(
        id=record.id,
        status=record.status,
        control=_arm("control", record.control_version, 1.0 - share, counts["control"]),
        candidate=_arm("candidate", record.candidate_version, share, counts["candidate"]),
        decision=str(ruling),
        probability=p,
        reason=reason,
        rule=record.rule,
        started_by=record.started_by,
        started_at=record.started_at,
        ended_by=record.ended_by,
        ended_at=record.ended_at,
    )


def _running_refusal(running: ExperimentRecord) -> ExperimentRefused:
    return ExperimentRefused(
        f"Experiment #{running.id} ({running.control_version} against "
        f"{running.candidate_version}) is still running: only one runs at a time. "
        "Stop it first (`ab stop`)."
    )


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
        self._cached: ExperimentRecord | None = None
        self._checked_at = -math.inf
        self._deciding, self._loading = asyncio.Lock(), asyncio.Lock()  # decisions, loads
        self._tasks: set[asyncio.Task[None]] = set()
        self._failed: set[int] = set()  # experiments whose candidate could not load here

    # -- what platforms and the CLI call ------------------------------------------------------
    async def start(self, actor: str, version: str, share: float | None = None) -> ExperimentStatus:
        share = self.config.share if share is None else share
        if not 0.0 < share < 1.0:
            raise ExperimentRefused(
                f"The candidate's share of members must be between 0 and 1 (e.g. 0.5), "
                f"not {share:g}. Nothing was started."
            )
        candidate = await self.db.run(self.versions.get, version)
        if candidate is None:
            raise no_version(version)
        if candidate.line is not None:  # its server's data must not reach other servers
            raise ExperimentRefused(f"{version} belongs to {candidate.line}'s model line only.")
        active = await self.db.run(self.versions.active)
        if active is None:
            raise ExperimentRefused(
                "There is no active version to compare with yet: start the bot once "
                "(`gpt2bot run`) so it prepares one."
            )
        if active.name == version:
            raise ExperimentRefused(
                f"{version} is the active version already: an experiment compares it with "
                "another version (see `models list`)."
            )
        running = await self.db.run(self.repository.running)
        if running is not None:
            raise _running_refusal(running)
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
                self.repository.start, active.name, version, share, rule, actor
            )
        except ExperimentRunning:  # another process started one at the same moment
            await self._unload(version)
            running = await self.db.run(self.repository.running)
            if running is None:
                raise ExperimentRefused("Another experiment just ended: try again.") from None
            raise _running_refusal(running) from None
        self._remember(record)
        detail = {"experiment": record.id, "control": active.name, "candidate": version}
        await self._audit(actor, "ab start", {**detail, "share": share, "rule": rule})
        log.info("%s started experiment #%d: %s against %s", actor, record.id, active.name, version)
        return await self._status_of(record)

    async def status(self) -> ExperimentStatus | None:
        record = await self.db.run(self.repository.latest)
        return None if record is None else await self._status_of(record)

    async def stop(self, actor: str) -> ExperimentStatus:
        running = await self.db.run(self.repository.running)
        if running is None:
            raise ExperimentRefused(
                "No experiment is running, so there is nothing to stop (`ab status` shows the "
                "last one)."
            )
        counts, decision = await self._decision(running)
        outcome = _outcome(counts, decision, f"stopped by {actor}")
        ended = await self.db.run(self.repository.finish, running.id, "stopped", actor, outcome)
        self._remember(None)
        if ended is None:  # another process decided it first: report what it did, undo nothing
            raise ExperimentRefused(
                f"Experiment #{running.id} ended just now without you; `ab status` shows how."
            )
        await self._unload(running.candidate_version)
        await self._audit(actor, "ab stop", {"experiment": running.id, **outcome})
        return await self._status_of(ended)

    async def candidate(self) -> str | None:
        experiment = await self._current()
        return None if experiment is None else experiment.candidate_version

    async def arm_for(self, platform: str, user_id: str) -> Assignment | None:
        experiment = await self._current()
        if experiment is None:
            return None
        point = share_point(experiment.id, platform, user_id)
        arm = "candidate" if point < experiment.candidate_share else "control"
        return Assignment(
            experiment.id, arm, experiment.control_version, experiment.candidate_version
        )

    async def evaluate(self, experiment_id: int | None = None) -> ExperimentStatus | None:
        """The ended experiment's status when the rule decided now; None otherwise."""
        if await self._current() is None:  # cached: ratings outside experiments cost no query
            return None
        async with self._deciding:  # one decision at a time in this process
            running = await self.db.run(self.repository.running)
            if running is None or experiment_id not in (None, running.id):
                return None
            counts, decision = await self._decision(running)
            if decision.ruling is Ruling.CONTINUE:
                return None
            return await self._conclude(running, counts, decision)

    async def resume(self) -> None:
        if (candidate := await self.follow()) is not None:
            log.info("an A/B experiment is running: its candidate %s is loaded", candidate)

    async def follow(self) -> str | None:
        """Load the running experiment's candidate here now (or unload an ended one's)."""
        before, running = self._cached, await self.db.run(self.repository.running)
        self._remember(running)
        if before is not None and (running is None or running.id != before.id):
            await self._unload(before.candidate_version)
        if running is not None:
            await self._load(running)
        return None if running is None else running.candidate_version

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
        control, candidate = _tally(counts["control"]), _tally(counts["candidate"])
        return counts, decide(control, candidate, config)

    async def _conclude(
        self, running: ExperimentRecord, counts: dict[str, ArmCounts], decision: Decision
    ) -> ExperimentStatus | None:
        ending = ENDINGS[decision.ruling]
        outcome = _outcome(counts, decision, decision.reason)
        ended = await self.db.run(self.repository.finish, running.id, ending, AB_ACTOR, outcome)
        if ended is None:
            return None  # another process decided first and acts on it
        self._remember(None)
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
                await self._audit(AB_ACTOR, "ab promotion refused", {**detail, **refused})
                return await self._status_of(ended)
        elif decision.ruling is Ruling.RETIRE:
            await self.db.run(self.versions.retire, candidate)
        await self._unload(candidate)
        await self._audit(AB_ACTOR, f"ab {ending}", detail)
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
        return await asyncio.to_thread(_status, record, counts, ruling, p, reason)

    # -- which experiment this process serves -------------------------------------------------
    async def _current(self) -> ExperimentRecord | None:
        """The running experiment, read again once `refresh_s` passed (cached between)."""
        if self._clock() - self._checked_at >= self.config.refresh_s:
            running = await self.db.run(self.repository.running)
            before = self._cached
            self._remember(running)
            if before is not None and (running is None or running.id != before.id):
                self._spawn(self._unload(before.candidate_version))
            if running is not None and (before is None or running.id != before.id):
                self._spawn(self._load(running))
        return self._cached

    def _remember(self, running: ExperimentRecord | None) -> None:
        self._cached, self._checked_at = running, self._clock()

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

    async def _audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        await self.db.run(self.audit.record, actor, AUDIT_PLATFORM, action, True, detail, "global")


def _outcome(counts: dict[str, ArmCounts], decision: Decision, reason: str) -> dict[str, Any]:
    """The numbers a decision was made on, as stored with the ended experiment."""
    return {
        "decision": str(decision.ruling),
        "probability": decision.probability,
        "reason": reason,
        **{arm: asdict(c) for arm, c in counts.items()},
    }
