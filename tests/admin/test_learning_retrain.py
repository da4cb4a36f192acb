"""Retraining through the service: a real training process, progress, one run at a time,
cancel and failure leave the active model alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from admin.service import LOSS_CURVE_FILE, LearningLoop

from admin.base import AlreadyRunning, TrainingRunInfo
from model.backends.local import LocalBackend
from model.config import ModelConfig
from storage import Database, ModelVersionRepository

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def test_retrain_trains_registers_promotes_and_hot_swaps(
    loop: LearningLoop,
    db: Database,
    versions: ModelVersionRepository,
    model_dir: Path,
    domain: list[str],
) -> None:
    backend = LocalBackend(ModelConfig(device="cpu"), "tiny-1", str(model_dir / "tiny-1"))
    await backend.start()
    loop.registry.backend = backend
    await loop.curate_add("admin", domain)
    updates: list[TrainingRunInfo] = []
    try:
        started = await loop.retrain_now("admin", updates.append)
        assert started.status == "running" and started.dataset_size == len(domain)
        with pytest.raises(AlreadyRunning, match=r"already running \(\d+%\)"):
            await loop.retrain_now("someone-else")
        final = await loop.wait()
    finally:
        await backend.close()
    assert final is not None and final.status == "succeeded", final
    assert final.promoted is True and "not worse than" in final.eval_after["gate"]
    assert final.eval_after["eval_loss"] < final.eval_before["eval_loss"]
    assert len(final.eval_before["samples"]) == len(final.eval_after["samples"]) == 3
    # the new version is registered, active, and serving
    assert versions.active().name == final.model_version  # type: ignore[union-attr]
    assert backend.model_version == final.model_version
    record = versions.get(final.model_version)  # type: ignore[arg-type]
    assert record is not None and record.parent == "tiny-1" and record.training_run_id == final.id
    assert (Path(record.path) / LOSS_CURVE_FILE).read_bytes().startswith(PNG_MAGIC)
    # per-step losses and the exact dataset are recorded
    run = loop.runs.get(final.id)
    assert [e["step"] for e in run.loss_log if "loss" in e] == list(
        range(1, run.loss_log[-1]["step"] + 1)
    )
    assert sorted(s["text"] for s in run.dataset_snapshot) == sorted(domain)
    # progress was reported as it went, ending with the final state
    assert updates and updates[-1].status == "succeeded"
    assert any(0 < u.progress < 1 and u.eta_s is not None for u in updates)
    assert (await loop.loss_curve(final.id)).startswith(PNG_MAGIC)
    assert (await loop.stats_chart()).startswith(PNG_MAGIC)


async def test_cancel_leaves_the_active_model_and_records_why(
    loop: LearningLoop, versions: ModelVersionRepository, domain: list[str]
) -> None:
    await loop.curate_add("admin", domain)
    first_step = asyncio.Event()

    def on_progress(info: TrainingRunInfo) -> None:
        if info.progress > 0:
            first_step.set()

    await loop.retrain_now("admin", on_progress, epochs=200)
    await asyncio.wait_for(first_step.wait(), timeout=60)
    assert await loop.retrain_cancel("admin-2") is True
    status = await loop.retrain_status()
    assert status is not None and status.status == "cancelled"
    assert status.error == "cancelled by admin-2" and status.model_version is None
    assert versions.active().name == "tiny-1"  # type: ignore[union-attr]
    assert [v.name for v in versions.list()] == ["tiny-1"]
    assert await loop.retrain_cancel("admin-2") is False


async def test_failed_run_records_the_reason(
    loop: LearningLoop, versions: ModelVersionRepository, model_dir: Path, domain: list[str]
) -> None:
    await loop.curate_add("admin", domain)
    for weights in (model_dir / "tiny-1").glob("*.safetensors"):
        weights.write_bytes(b"not a model")
    await loop.retrain_now("admin")
    final = await loop.wait()
    assert final is not None and final.status == "failed"
    assert final.error and "train.log" in final.error
    assert versions.active().name == "tiny-1"  # type: ignore[union-attr]


async def test_too_little_data_is_refused_with_advice(loop: LearningLoop) -> None:
    await loop.curate_add("admin", ["only one sample"])
    with pytest.raises(ValueError, match="add at least 2"):
        await loop.retrain_now("admin")


async def test_run_interrupted_by_a_crash_resumes_at_the_next_start(
    loop: LearningLoop, db: Database, model_dir: Path, domain: list[str]
) -> None:
    await loop.curate_add("admin", domain)
    checkpointed = asyncio.Event()

    def on_progress(info: TrainingRunInfo) -> None:
        if info.progress >= 0.05:  # several checkpoints (every 2 steps) are on disk by now
            checkpointed.set()

    started = await loop.retrain_now("admin", on_progress, epochs=100)
    await asyncio.wait_for(checkpointed.wait(), timeout=60)
    # the bot process dies: its training process with it, the run stays `running`
    loop._closing = True
    assert loop._process is not None and loop._process._process is not None
    loop._process._process.kill()
    await asyncio.gather(loop._task, return_exceptions=True)  # type: ignore[arg-type]
    assert loop.runs.get(started.id).status == "running"

    restarted = LearningLoop(db, loop.model, loop.config)
    await restarted.start(schedule=False)
    final = await restarted.wait()
    await restarted.close()
    assert final is not None and final.id == started.id and final.status == "succeeded"
    log = loop.runs.get(started.id).loss_log
    resumed = next(e for e in log if e.get("event") == "resumed")
    after = [e["step"] for e in log[log.index(resumed) :] if "loss" in e]
    assert resumed["step"] > 0 and after[0] == resumed["step"] + 1
