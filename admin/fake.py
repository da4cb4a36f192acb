"""In-memory admin services for tests of the platforms (the way httpx ships `MockTransport`
beside `BaseTransport`): they keep their state in lists, answer like the real ones, and record
each call as `(method, args)` in one `calls` list shared by all of them.

    admin = fake_admin()
    ... drive a chat command ...
    assert ("curation.add", ("42", ["A sample."])) in admin.calls
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from admin.base import AdminServices, ProgressCallback
from admin.errors import AlreadyRunning, Invalid, PromotionRefused, Unknown, no_version
from admin.fake_experiments import FakeExperiments, now
from admin.fake_review import FakeReviews
from admin.fleet_view import FleetView
from admin.results import CurationReport
from admin.servers import validate
from storage import (
    CuratedSampleRecord,
    ModelVersionRecord,
    ReportedRecord,
    RunStatus,
    ServerSettingsRecord,
    TrainingRunRecord,
    VersionRatingStats,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAKE_CHART = PNG_SIGNATURE + b"fake chart"
MIN_SCHEDULE_FIELDS = 5


def fake_run(run_id: int, status: RunStatus, actor: str = "admin", **fields: Any) -> Any:
    """A training-run record as the real service reports it."""
    done = status not in (RunStatus.QUEUED, RunStatus.RUNNING)
    values: dict[str, Any] = {
        "id": run_id,
        "trigger": "manual",
        "requested_by": actor,
        "status": status,
        "dataset_size": 42,
        "dataset_snapshot": [],
        "loss_log": [],
        "progress": 1.0 if status == RunStatus.SUCCEEDED else 0.0,
        "eval_before": {"eval_loss": 3.5},
        "eval_after": {"eval_loss": 3.1, "promoted": True} if status == RunStatus.SUCCEEDED else {},
        "model_version": f"ft-{run_id}" if status == RunStatus.SUCCEEDED else None,
        "error": None,
        "created_at": now(),
        "finished_at": now() if done else None,
        "eta_s": 30.0 if status == RunStatus.RUNNING else None,
    }
    return TrainingRunRecord(**{**values, **fields})


def fake_version(name: str, status: str = "retired", **fields: Any) -> ModelVersionRecord:
    values: dict[str, Any] = {
        "name": name,
        "parent": None,
        "path": f"/models/{name}",
        "base_model": "bootstrap",
        "training_run_id": None,
        "metrics": {},
        "status": status,
        "created_at": now(),
        "activated_at": now() if status == "active" else None,
    }
    return ModelVersionRecord(**{**values, **fields})


@dataclass
class FakeCuration:
    calls: list[tuple[str, Any]]
    items: list[CuratedSampleRecord] = field(default_factory=list)

    async def add(self, actor: str, texts: list[str]) -> CurationReport:
        self.calls.append(("curation.add", (actor, texts)))
        seen = {i.text for i in self.items if i.active}
        fresh = []
        for text in texts:
            if text.strip() and text not in seen:
                seen.add(text)
                fresh.append(text)
        for text in fresh:
            record = CuratedSampleRecord(len(self.items) + 1, text, "admin", actor, now(), True)
            self.items.append(record)
        skipped = len(texts) - len(fresh)
        return CurationReport(len(fresh), {"duplicates or empty": skipped} if skipped else {})

    async def add_file(self, actor: str, filename: str, content: bytes) -> CurationReport:
        self.calls.append(("curation.add_file", (actor, filename, content)))
        lines = [line for line in content.decode().splitlines() if line.strip()]
        if filename.endswith(".jsonl"):
            lines = [json.loads(line)["text"] for line in lines]
        return await self.add(actor, lines)

    async def recent(self, limit: int = 20) -> list[CuratedSampleRecord]:
        self.calls.append(("curation.recent", limit))
        return [i for i in reversed(self.items) if i.active][:limit]

    async def remove(self, actor: str, sample_id: int) -> None:
        self.calls.append(("curation.remove", (actor, sample_id)))
        for index, item in enumerate(self.items):
            if item.id == sample_id and item.active:
                self.items[index] = replace(item, active=False)
                return
        raise Unknown(f"There is no curated sample {sample_id}.")

    async def pending(self, limit: int = 20) -> list[CuratedSampleRecord]:
        self.calls.append(("curation.pending", limit))
        return [i for i in self.items if i.status == "pending"][:limit]

    async def review(self, actor: str, sample_id: int, approve: bool) -> CuratedSampleRecord:
        self.calls.append(("curation.review", (actor, sample_id, approve)))
        for index, item in enumerate(self.items):
            if item.id == sample_id and item.status == "pending":
                status = "approved" if approve else "rejected"
                self.items[index] = replace(item, status=status, active=approve, reviewed_by=actor)
                return self.items[index]
        raise Unknown(f"No curated sample {sample_id} is waiting for review.")


@dataclass
class FakeTraining:
    """Runs start as `running` and end when the test calls `report(...)`; `report_after_s`
    ends them by themselves, from the background, like the real service."""

    calls: list[tuple[str, Any]]
    runs: list[TrainingRunRecord] = field(default_factory=list)
    report_after_s: float | None = None
    cron: str | None = None
    progress: ProgressCallback | None = None

    async def start(
        self,
        actor: str,
        progress: ProgressCallback | None = None,
        *,
        include_ratings: bool = True,
        epochs: int | None = None,
    ) -> TrainingRunRecord:
        self.calls.append(("training.start", actor))
        if self.runs and self.runs[-1].status == RunStatus.RUNNING:
            raise AlreadyRunning("A training run is already running (40%).")
        run = fake_run(len(self.runs) + 1, RunStatus.RUNNING, actor, progress=0.4)
        self.runs.append(run)
        self.progress = progress
        if self.report_after_s is not None:
            loop = asyncio.get_running_loop()
            loop.call_later(self.report_after_s, self.report, RunStatus.SUCCEEDED, 1.0)
        return run

    def report(self, status: RunStatus, progress: float) -> None:
        """Advance (or end) the latest run and tell the caller of `start`."""
        run = replace(fake_run(self.runs[-1].id, status), progress=progress)
        self.runs[-1] = run
        if self.progress is not None:
            self.progress(run)

    async def status(self) -> TrainingRunRecord | None:
        return self.runs[-1] if self.runs else None

    async def wait(self) -> TrainingRunRecord | None:
        return await self.status()

    async def cancel(self, actor: str) -> bool:
        self.calls.append(("training.cancel", actor))
        if not self.runs or self.runs[-1].status != RunStatus.RUNNING:
            return False
        self.runs[-1] = replace(self.runs[-1], status=RunStatus.CANCELLED)
        return True

    async def schedule(self, actor: str, cron: str | None) -> list[datetime]:
        self.calls.append(("training.schedule", (actor, cron)))
        if cron is not None and len(cron.split()) != MIN_SCHEDULE_FIELDS:
            raise Invalid(f"{cron!r} is not a cron expression: use five fields.")
        if cron is not None and cron.split()[0] == "*":
            raise Invalid("Retraining every minute is too often: use at most hourly.")
        self.cron = cron
        return [] if cron is None else [now() + timedelta(days=7 * i) for i in (1, 2, 3)]

    async def start_background(self) -> None:
        """Nothing runs in the background of the fake."""

    async def close(self) -> None:
        """Nothing to stop."""


@dataclass
class FakeRegistry:
    """Versions in a list; `use` and `rollback` switch which one is active (and swap
    `backend` when one is given). The gate compares the versions' `eval_loss` metrics: a
    version whose loss is higher than the active one's is refused unless forced."""

    calls: list[tuple[str, Any]]
    items: list[ModelVersionRecord] = field(default_factory=list)
    backend: Any = None
    previous: list[str] = field(default_factory=list)

    async def versions(self) -> list[ModelVersionRecord]:
        self.calls.append(("registry.versions", None))
        return list(self.items)

    async def use(self, actor: str, version: str, force: bool = False) -> ModelVersionRecord:
        self.calls.append(("registry.use", (actor, version, force)))
        by_name = {v.name: v for v in self.items}
        if version not in by_name:
            raise no_version(version)
        active = [v.name for v in self.items if v.status == "active"]
        if active and not force:
            self._gate(by_name[version], by_name[active[0]])
        self.previous.extend(active)
        return await self._activate(version)

    @staticmethod
    def _gate(candidate: ModelVersionRecord, active: ModelVersionRecord) -> None:
        loss, active_loss = candidate.metrics.get("eval_loss"), active.metrics.get("eval_loss")
        if loss is not None and active_loss is not None and loss > active_loss:
            raise PromotionRefused(
                f"{candidate.name} was not promoted: its held-out loss {loss:.4f} is worse than "
                f"the active {active.name}'s {active_loss:.4f}."
            )

    async def rollback(self, actor: str) -> ModelVersionRecord:
        self.calls.append(("registry.rollback", actor))
        if not self.previous:
            raise Unknown("There is no earlier active version to roll back to.")
        return await self._activate(self.previous.pop())

    async def remove(self, actor: str, version: str) -> ModelVersionRecord:
        """Drops `version` from the list; refuses the active one and a base of adapters."""
        self.calls.append(("registry.remove", (actor, version)))
        record = next((v for v in self.items if v.name == version), None)
        if record is None:
            raise no_version(version)
        if record.status == "active" or any(v.base_version == version for v in self.items):
            raise Invalid(f"{version} is in use and cannot be removed.")
        self.items.remove(record)
        return record

    async def follow(self, avoid: Collection[str] = ()) -> ModelVersionRecord | None:
        return next((v for v in self.items if v.status == "active"), None)

    async def _activate(self, name: str) -> ModelVersionRecord:
        self.items = [
            replace(v, status="active" if v.name == name else "retired") for v in self.items
        ]
        record = next(v for v in self.items if v.name == name)
        if self.backend is not None:
            await self.backend.swap(record.name, record.path)
        return record


@dataclass
class FakeFleet:
    """No process serves: the view is what the fake registry and experiments say (a read,
    so not in `calls`)."""

    registry: FakeRegistry
    experiments: FakeExperiments

    async def view(self) -> FleetView:
        active = next((v.name for v in self.registry.items if v.status == "active"), None)
        return FleetView(active, await self.experiments.candidate(), (), 5.0)

    async def wait(self, timeout_s: float) -> FleetView:
        return await self.view()


@dataclass
class FakeReports:
    calls: list[tuple[str, Any]]
    rows: list[VersionRatingStats] = field(default_factory=list)
    chart: bytes = FAKE_CHART

    async def stats(self) -> list[VersionRatingStats]:
        self.calls.append(("reports.stats", None))
        return list(self.rows)

    async def stats_chart(self) -> bytes:
        return self.chart

    async def loss_curve(self, run_id: int | None = None) -> bytes:
        return self.chart


@dataclass
class FakeServers:
    """Settings per (platform, server) in a dict, validated like the real ones."""

    calls: list[tuple[str, Any]]
    saved: dict[tuple[str, str], ServerSettingsRecord] = field(default_factory=dict)

    async def get(self, platform: str, server_id: str) -> ServerSettingsRecord:
        return self.saved.get((platform, server_id), ServerSettingsRecord(platform, server_id))

    async def reported(self, platform: str, server_id: str) -> list[ReportedRecord]:
        return []

    async def keep_reported(
        self, actor: str, platform: str, server_id: str, generation_id: int
    ) -> None:
        self.calls.append(("servers.keep_reported", (actor, platform, server_id, generation_id)))
        raise Unknown(f"There is no generation #{generation_id} in this server.")

    async def delete_generation(
        self, actor: str, platform: str, server_id: str, generation_id: int
    ) -> tuple[str | None, str | None]:
        self.calls.append(
            ("servers.delete_generation", (actor, platform, server_id, generation_id))
        )
        raise Unknown(f"There is no generation #{generation_id} in this server.")

    async def update(
        self, actor: str, platform: str, server_id: str, **changes: Any
    ) -> ServerSettingsRecord:
        self.calls.append(("servers.update", (actor, platform, server_id, changes)))
        record = replace(await self.get(platform, server_id), **validate(changes))
        self.saved[(platform, server_id)] = replace(record, updated_by=actor)
        return self.saved[(platform, server_id)]


@dataclass(frozen=True)
class FakeAdmin(AdminServices):
    """`AdminServices` of fakes, with their shared call log."""

    calls: list[tuple[str, Any]] = field(default_factory=list)


def fake_admin(
    *,
    samples: Sequence[str] = (),
    versions: Sequence[ModelVersionRecord] = (),
    stats: Sequence[VersionRatingStats] = (),
    backend: Any = None,
    report_after_s: float | None = None,
) -> FakeAdmin:
    """Fake admin services seeded with curated `samples`, model `versions` and `stats`."""
    calls: list[tuple[str, Any]] = []
    curation = FakeCuration(
        calls,
        [
            CuratedSampleRecord(i + 1, t, "admin", "admin", now(), True)
            for i, t in enumerate(samples)
        ],
    )
    registry = FakeRegistry(calls, list(versions), backend)
    experiments = FakeExperiments(calls, registry)
    return FakeAdmin(
        curation=curation,
        training=FakeTraining(calls, report_after_s=report_after_s),
        registry=registry,
        reports=FakeReports(calls, list(stats)),
        servers=FakeServers(calls),
        experiments=experiments,
        reviews=FakeReviews(calls, registry),
        fleet=FakeFleet(registry, experiments),
        calls=calls,
    )
