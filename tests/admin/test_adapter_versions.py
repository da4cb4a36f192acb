"""Adapter versions (TRAIN_METHOD=lora) through the real learning loop and a real engine: a
retrain registers an adapter that names its base; the gate, promotion (hot-swap), rollback, an
A/B experiment and a blind review serve it like any version."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from admin.config import LearningConfig
from admin.curation import Curation
from admin.errors import Invalid, Unknown
from admin.experiments import Experiments
from admin.moderation.fake import FakeModerator
from admin.registry import Registry
from admin.review import Reviews
from admin.training import Training
from model.backends.base import GenerationRequest, SamplingParams
from model.backends.fake import ScriptedBackend
from model.backends.local import LocalBackend
from model.config import ModelConfig
from storage import Database, ModelVersionRepository, RunStatus
from tests.admin.conftest import LEARNING

LORA_LEARNING: LearningConfig = replace(
    LEARNING,
    finetune=replace(
        LEARNING.finetune, method="lora", lora_rank=4, lora_alpha=8, learning_rate=3e-2, epochs=3
    ),
    promote_tolerance=0.05,
)


@dataclass
class Loop:
    backend: LocalBackend
    registry: Registry
    training: Training
    curation: Curation
    experiments: Experiments
    reviews: Reviews


@pytest.fixture
async def loop(
    db: Database, model_dir: Path, versions: ModelVersionRepository
) -> AsyncIterator[Loop]:
    """The learning loop wired as `bot.app` wires it, over an engine serving tiny-1."""
    config = ModelConfig(device="cpu", dtype="fp32")
    backend = LocalBackend(config, "tiny-1", versions_path(versions))
    await backend.start()
    curation = Curation(db, LORA_LEARNING, FakeModerator())
    registry = Registry(db, LORA_LEARNING.promote_tolerance, backend)
    model = ModelConfig(model_dir=model_dir, device="cpu")
    training = Training(db, model, LORA_LEARNING, curation, registry)
    experiments = Experiments(db, registry, backend, LORA_LEARNING.ab, serves=True)
    reviews = Reviews(db, backend, candidate=experiments.candidate)
    yield Loop(backend, registry, training, curation, experiments, reviews)
    await experiments.close()
    await training.close()
    await backend.close()


def versions_path(versions: ModelVersionRepository) -> str:
    active = versions.active()
    assert active is not None
    return active.path


async def _retrain(loop: Loop, domain: list[str]) -> str:
    await loop.curation.add("owner", domain)
    await loop.training.start("owner", include_ratings=False)
    run = await loop.training.wait()
    assert run is not None and run.status == RunStatus.SUCCEEDED, run
    assert run.model_version is not None
    return run.model_version


async def _served_by(backend: LocalBackend, version: str | None = None) -> str:
    params = SamplingParams(max_new_tokens=4, seed=1)
    handle = backend.submit(GenerationRequest("A robot", params, "alice", version=version))
    return (await handle.result()).model_version


async def test_a_lora_retrain_registers_an_adapter_that_is_gated_promoted_and_rolled_back(
    loop: Loop, versions: ModelVersionRepository, domain: list[str]
) -> None:
    first = await _retrain(loop, domain)
    row = versions.get(first)
    assert row is not None and row.base_version == "tiny-1" and row.parent == "tiny-1"
    assert row.metrics["train_method"] == "lora" and row.metrics["lora_rank"] == 4
    assert 0 < row.metrics["size_on_disk_bytes"] < 200_000
    run = await loop.training.status()
    assert run is not None and run.eval_after["train_method"] == "lora"
    # the gate passed it and the engine swapped to it: the adapter serves members now
    assert versions.active().name == first  # type: ignore[union-attr]
    assert await _served_by(loop.backend) == first
    # a second retrain goes on from the active adapter, over the same base
    second = await _retrain(loop, [f"{t} Again." for t in domain])
    again = versions.get(second)
    assert again is not None and (again.base_version, again.parent) == ("tiny-1", first)
    assert await _served_by(loop.backend) == second
    # rollback serves the previous version again
    await loop.registry.rollback("owner")
    assert versions.active().name == first  # type: ignore[union-attr]
    assert await _served_by(loop.backend) == first
    # the gate loads both adapters to measure one that was measured against another version
    versions.update_metrics(second, {"baseline_version": "someone-else"})
    decision = await loop.registry.judge(versions.get(second))  # type: ignore[arg-type]
    assert decision.candidate_loss is not None and decision.active_loss is not None
    assert decision.candidate_loss != decision.active_loss  # two different merged models


async def test_an_adapter_can_be_an_ab_arm_and_a_blind_review_side(
    loop: Loop, versions: ModelVersionRepository, domain: list[str]
) -> None:
    adapter = await _retrain(loop, domain)
    await loop.registry.rollback("owner")  # the base serves; the adapter is the candidate
    status = await loop.experiments.start("owner", adapter)
    assert status.candidate.version == adapter
    assert set(loop.backend.resident_versions) == {"tiny-1", adapter}
    assert await _served_by(loop.backend, adapter) == adapter
    item = await loop.reviews.next_item("owner", "tiny-1", adapter)
    assert item.output_a and item.output_b
    judged = await loop.reviews.record("owner", item.id, "a")
    assert {judged.version_a, judged.version_b} == {"tiny-1", adapter}
    await loop.experiments.stop("owner")
    assert loop.backend.resident_versions == ("tiny-1",)


async def test_a_base_that_adapters_load_over_cannot_be_removed(
    db: Database, versions: ModelVersionRepository, model_dir: Path
) -> None:
    """`models remove`: the active version and a base with adapters are refused with what to
    do; a version nothing needs goes, row and folder."""
    for name in ("full-2", "lora-3"):
        shutil.copytree(model_dir / "tiny-1", model_dir / name)
    versions.add("full-2", str(model_dir / "full-2"), "bootstrap", parent="tiny-1")
    versions.add("lora-3", str(model_dir / "lora-3"), "bootstrap", "full-2", base_version="full-2")
    registry = Registry(db, 0.0, ScriptedBackend(model_version="tiny-1"), model_dir=model_dir)
    with pytest.raises(Invalid, match="switch to another"):
        await registry.remove("owner", "tiny-1")
    with pytest.raises(Invalid) as refused:
        await registry.remove("owner", "full-2")
    assert str(refused.value) == (
        "full-2 is the base of the adapter version(s) lora-3: they load over its weights, so it "
        "cannot be removed. Remove those adapters first, or keep it."
    )
    assert versions.get("full-2") is not None and (model_dir / "full-2").exists()
    await registry.remove("owner", "lora-3")
    await registry.remove("owner", "full-2")  # nothing loads over it any more
    assert [v.name for v in versions.list()] == ["tiny-1"]
    assert not (model_dir / "lora-3").exists() and not (model_dir / "full-2").exists()
    with pytest.raises(Unknown):
        await registry.remove("owner", "lora-3")
