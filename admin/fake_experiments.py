"""The fake `ExperimentService` (part of `admin.fake.fake_admin`): one A/B experiment at a
time in memory, over the fake registry's versions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from admin.errors import ExperimentRefused, no_version
from admin.experiments import share_point
from admin.results import ArmStatus, Assignment, ExperimentStatus
from storage import ModelVersionRecord


class HasVersions(Protocol):
    """The fake registry, as the other fakes read it: its versions."""

    items: list[ModelVersionRecord]


def now() -> datetime:
    return datetime.now(UTC)


def _fake_arm(arm: str, version: str, share: float) -> ArmStatus:
    return ArmStatus(arm, version, share, 0, 0, 0, 0, None, (0.025, 0.975))


@dataclass
class FakeExperiments:
    """One experiment at a time, in memory, over the fake registry's versions; members are
    assigned like the real service does. Nothing is ever decided: set `current` to show one."""

    calls: list[tuple[str, Any]]
    registry: HasVersions  # the fake registry
    current: ExperimentStatus | None = None

    async def start(self, actor: str, version: str, share: float | None = None) -> ExperimentStatus:
        self.calls.append(("experiments.start", (actor, version, share)))
        active = next((v.name for v in self.registry.items if v.status == "active"), None)
        if version not in {v.name for v in self.registry.items}:
            raise no_version(version)
        if version == active or active is None:
            raise ExperimentRefused(f"{version} is the active version already.")
        if self.current is not None and self.current.running:
            raise ExperimentRefused(f"Experiment #{self.current.id} is still running.")
        share = 0.5 if share is None else share
        self.current = ExperimentStatus(
            (self.current.id + 1) if self.current else 1,
            "running",
            _fake_arm("control", active, 1 - share),
            _fake_arm("candidate", version, share),
            "continue",
            0.5,
            "each arm needs 100 ratings (0 so far)",
            {"rule": "beta-binomial"},
            actor,
            now(),
        )
        return self.current

    async def status(self) -> ExperimentStatus | None:
        return self.current

    async def stop(self, actor: str) -> ExperimentStatus:
        self.calls.append(("experiments.stop", actor))
        if self.current is None or not self.current.running:
            raise ExperimentRefused("No experiment is running, so there is nothing to stop.")
        self.current = replace(self.current, status="stopped", ended_by=actor, ended_at=now())
        return self.current

    async def follow(self) -> str | None:
        return await self.candidate()

    async def candidate(self) -> str | None:
        running = self.current is not None and self.current.running
        return self.current.candidate.version if running and self.current else None

    async def arm_for(self, platform: str, user_id: str) -> Assignment | None:
        if self.current is None or not self.current.running:
            return None
        now = self.current
        arm = (
            "candidate"
            if share_point(now.id, platform, user_id) < now.candidate.share
            else "control"
        )
        return Assignment(now.id, arm, now.control.version, now.candidate.version)

    async def evaluate(self, experiment_id: int | None = None) -> ExperimentStatus | None:
        self.calls.append(("experiments.evaluate", experiment_id))
        return None

    async def resume(self) -> None:
        """Nothing to load."""

    async def close(self) -> None:
        """Nothing runs in the background."""
