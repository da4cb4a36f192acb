"""Retraining through the training service: a real training process, progress, one run at a
time, cancel and failure leave the active model alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from admin.curation import Curation
from admin.errors import AlreadyRunning
from admin.registration import LOSS_CURVE_FILE
from admin.reports import Reports
from admin.training import Training
from model.backends.local import LocalBackend
from model.config import ModelConfig
from storage import Database, ModelVersionRepository, RunStatus, TrainingRunRecord
from tests.admin.conftest import build_services

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def test_retrain_trains_registers_promotes_and_hot_swaps(
    db: Database,
    versions: ModelVersionRepository,
    model_dir: Path,
    domain: list[str],
) -> None:
    backend = LocalBackend(ModelConfig(device="cpu"), "tiny-1", str(model_dir / "tiny-1"))
    await backend.start()
    admin = build_services(db, model_dir, backend)  # the registry hot-swaps this backend
    assert isinstance(admin.training, Training) and isinstance(admin.reports, Reports)
    training, reports = admin.training, admin.reports
    await admin.curation.add("admin", domain)
    updates: list[TrainingRunRecord] = []
    try:
        started = await training.start("admin", updates.append)
        assert started.status == RunStatus.RUNNING and started.dataset_size == len(domain)
        with pytest.raises(AlreadyRunning, match=r"already running \(\d+%\)"):
            await training.start("someone-else")
        final = await training.wait()
    finally:
        await admin.close()
        await backend.close()
    assert final is not None and final.status == RunStatus.SUCCEEDED, final
    assert final.promoted is True and "not worse than" in final.eval_after["gate"]
    assert final.eval_after["eval_loss"] < final.eval_before["eval_loss"]
    assert len(final.eval_before["samples"]) == len(final.eval_after["samples"]) == 3
    # the new version is registered, active, and serving
    assert versions.active().name == final.model_version  # type: ignore[union-attr]
    assert backend.model_version == final.model_version
    record = versions.get(final.model_version)  # type: ignore[arg-type]
    assert record is not None and record.parent == "tiny-1" and record.training_run_id == final.id
    assert (Path(record.path) / LOSS_CURVE_FILE).read_bytes().startswith(PNG_MAGIC)
    # the gate saw how often both versions' fixed-prompt samples were flagged
    assert 0.0 <= record.metrics["flagged_share"] <= 1.0
    assert 0.0 <= record.metrics["baseline_flagged_share"] <= 1.0
    assert "flagged" in final.eval_after["gate"]
    # per-step losses and the exact dataset are recorded
    run = training.runs.get(final.id)
    assert [e["step"] for e in run.loss_log if "loss" in e] == list(
        range(1, run.loss_log[-1]["step"] + 1)
    )
    assert sorted(s["text"] for s in run.dataset_snapshot) == sorted(domain)
    # progress was reported as it went, ending with the final state
    assert updates and updates[-1].status == RunStatus.SUCCEEDED
    assert any(0 < u.progress < 1 and u.eta_s is not None for u in updates)
    assert (await reports.loss_curve(final.id)).startswith(PNG_MAGIC)
    assert (await reports.stats_chart()).startswith(PNG_MAGIC)


async def test_cancel_leaves_the_active_model_and_records_why(
    training: Training,
    curation: Curation,
    versions: ModelVersionRepository,
    domain: list[str],
) -> None:
    await curation.add("admin", domain)
    first_step = asyncio.Event()

    def on_progress(run: TrainingRunRecord) -> None:
        if run.progress > 0:
            first_step.set()

    await training.start("admin", on_progress, epochs=200)
    await asyncio.wait_for(first_step.wait(), timeout=60)
    assert await training.cancel("admin-2") is True
    status = await training.status()
    assert status is not None and status.status == RunStatus.CANCELLED
    assert status.error == "cancelled by admin-2" and status.model_version is None
    assert versions.active().name == "tiny-1"  # type: ignore[union-attr]
    assert [v.name for v in versions.list()] == ["tiny-1"]
    assert await training.cancel("admin-2") is False


async def test_failed_run_records_the_reason(
    training: Training,
    curation: Curation,
    versions: ModelVersionRepository,
    model_dir: Path,
    domain: list[str],
) -> None:
    await curation.add("admin", domain)
    for weights in (model_dir / "tiny-1").glob("*.safetensors"):
        weights.write_bytes(b"not a model")
    await training.start("admin")
    final = await training.wait()
    assert final is not None and final.status == RunStatus.FAILED
    assert final.error and "train.log" in final.error
    assert versions.active().name == "tiny-1"  # type: ignore[union-attr]


async def test_too_little_data_is_refused_with_advice(
    training: Training, curation: Curation
) -> None:
    await curation.add("admin", ["only one sample"])
    with pytest.raises(ValueError, match="add at least 2"):
        await training.start("admin")


async def test_run_interrupted_by_a_crash_resumes_at_the_next_start(
    training: Training,
    curation: Curation,
    db: Database,
    model_dir: Path,
    domain: list[str],
) -> None:
    await curation.add("admin", domain)
    checkpointed = asyncio.Event()

    def on_progress(run: TrainingRunRecord) -> None:
        if run.progress >= 0.05:  # several checkpoints (every 2 steps) are on disk by now
            checkpointed.set()

    started = await training.start("admin", on_progress, epochs=100)
    await asyncio.wait_for(checkpointed.wait(), timeout=60)
    # the bot process dies: its training process with it, the run stays `running`
    training._closing = True
    assert training._process is not None and training._process._process is not None
    training._process._process.kill()
    await asyncio.gather(training._task, return_exceptions=True)  # type: ignore[arg-type]
    assert training.runs.get(started.id).status == RunStatus.RUNNING

    restarted = build_services(db, model_dir, training.registry.backend)
    assert isinstance(restarted.training, Training)
    assert await restarted.training.interrupted_run() is not None
    await restarted.training.start_background()  # what `gpt2bot run` does at start-up
    final = await restarted.training.wait()
    await restarted.close()
    assert final is not None and final.id == started.id and final.status == RunStatus.SUCCEEDED
    log = training.runs.get(started.id).loss_log
    resumed = next(e for e in log if e.get("event") == "resumed")
    after = [e["step"] for e in log[log.index(resumed) :] if "loss" in e]
    assert resumed["step"] > 0 and after[0] == resumed["step"] + 1
