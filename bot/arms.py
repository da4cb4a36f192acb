"""A/B arms on the chat side: the version a member's request names while an experiment runs,
the arm a stored generation records, and the rule's look after each rating.

The arm recorded is the one whose version really served (`GenerationResult.model_version`):
until a candidate is resident, the active version serves its members, and their generations
count for the control arm. The rule's look runs in the background: a reply never waits for
it, and its errors are logged.
"""

from __future__ import annotations

import asyncio
import logging

from admin.base import ExperimentService
from admin.results import Assignment, ExperimentStatus

log = logging.getLogger(__name__)


class NoExperiments:
    """Chat without A/B serving (services built without one): every member gets the active
    version."""

    async def arm_for(
        self, platform: str, user_id: str, line: str | None = None
    ) -> Assignment | None:
        return None

    async def evaluate(self, experiment_id: int | None = None) -> ExperimentStatus | None:
        return None


class Arms:
    """The chat service's view of the running experiment."""

    def __init__(self, experiments: ExperimentService | NoExperiments) -> None:
        self.experiments = experiments
        self._tasks: set[asyncio.Task[ExperimentStatus | None]] = set()

    async def of(self, platform: str, user_id: str, line: str | None = None) -> Assignment | None:
        """The member's arm in `line`'s experiment (None: the shared line's); None without
        one, or when it cannot be read (the line's active version serves then: chat never
        fails for an experiment)."""
        try:
            return await self.experiments.arm_for(platform, user_id, line)
        except Exception:
            log.exception("could not read the A/B experiment; the active version serves")
            return None

    @staticmethod
    def served(assignment: Assignment | None, version: str) -> tuple[int | None, str | None]:
        """(experiment id, arm) of the arm whose version served; (None, None) for neither."""
        if assignment is None:
            return None, None
        for arm in ("control", "candidate"):
            if getattr(assignment, arm) == version:
                return assignment.experiment_id, arm
        return None, None

    def rated(self, experiment_id: int | None) -> None:
        """A generation of `experiment_id` was rated: let the rule look, in the background."""
        if experiment_id is None:
            return
        task = asyncio.get_running_loop().create_task(self.experiments.evaluate(experiment_id))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[ExperimentStatus | None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        if task.exception() is not None:
            log.error("the A/B rule could not evaluate", exc_info=task.exception())
            return
        ended = task.result()
        if ended is not None:
            log.info("experiment #%d ended after a rating: %s", ended.id, ended.status)

    async def wait(self) -> None:
        """Until the looks started so far have finished (tests, shutdown)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
