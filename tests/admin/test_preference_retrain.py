"""A retrain with TRAIN_OBJECTIVE=kto learns from 👍 and 👎 rated outputs in the database."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from admin.curation import Curation
from admin.moderation.fake import FakeModerator
from admin.registry import Registry
from admin.training import Training
from model.backends.fake import ScriptedBackend
from model.config import ModelConfig
from model.versions import read_metadata
from storage import Database, GenerationRepository, ModelVersionRepository, NewGeneration, RunStatus
from tests.admin.conftest import LEARNING


def _generation(db: Database, prompt: str, output: str) -> int:
    new = NewGeneration(
        platform="web",
        user_id="author",
        prompt=prompt,
        output=output,
        params={},
        seed=1,
        model_version="tiny-1",
        prompt_tokens=2,
        completion_tokens=3,
        latency_s=0.1,
    )
    return GenerationRepository(db).add(new).id


def _training(db: Database, model_dir: Path, objective: str) -> Training:
    config = replace(LEARNING, finetune=replace(LEARNING.finetune, objective=objective))
    curation = Curation(db, config, FakeModerator())
    registry = Registry(db, config.promote_tolerance, ScriptedBackend(model_version="tiny-1"))
    return Training(db, ModelConfig(model_dir=model_dir, device="cpu"), config, curation, registry)


def _rate_outputs(db: Database) -> tuple[set[int], set[int]]:
    repo = GenerationRepository(db)
    liked, disliked = set(), set()
    for i in range(18):
        good = i % 3 == 0
        gid = _generation(db, f"Robot number {i}", " paints the fence." if good else " breaks it.")
        for rater in ("r1", "r2"):
            repo.rate(gid, rater, 1 if good else -1, "👍" if good else "👎")
        (liked if good else disliked).add(gid)
    lonely = _generation(db, "Robot number 99", " breaks it.")
    repo.rate(lonely, "author", -1, "👎")  # a self-rating and one rater: never counted
    repo.rate(lonely, "r1", -1, "👎")
    return liked, disliked


async def test_a_kto_retrain_learns_from_rated_pairs(
    db: Database, versions: ModelVersionRepository, model_dir: Path, domain: list[str]
) -> None:
    liked, disliked = _rate_outputs(db)
    training = _training(db, model_dir, "kto")
    await training.curation.add("admin", domain[:6])
    try:
        started = await training.start("admin")
        final = await training.wait()
    finally:
        await training.close()
    assert final is not None and final.status == RunStatus.SUCCEEDED, final
    # the run kept which rated outputs it learned from, and the texts it evaluated on
    snapshot = training.runs.get(started.id).dataset_snapshot
    by_source = {
        source: {s.get("generation_id") for s in snapshot if s["source"] == source}
        for source in ("liked", "disliked")
    }
    assert by_source == {"liked": liked, "disliked": disliked}
    assert sum(s["source"] == "admin" for s in snapshot) == 6
    # per-step KTO losses are in the run's loss log, like SFT's
    assert [e["step"] for e in final.loss_log if "loss" in e] == list(
        range(1, final.loss_log[-1]["step"] + 1)
    )
    record = versions.get(final.model_version)  # type: ignore[arg-type]
    assert record is not None and record.parent == "tiny-1"
    metrics = read_metadata(record.path)["metrics"]
    assert metrics["objective"] == "kto"
    assert metrics["desirable"] + metrics["undesirable"] + metrics["heldout_rows"] == 18
    assert metrics["desirable_weight"] > metrics["undesirable_weight"] == 1.0  # 👍 are rarer


async def test_kto_without_rated_outputs_is_refused_with_advice(
    db: Database, versions: ModelVersionRepository, model_dir: Path, domain: list[str]
) -> None:
    training = _training(db, model_dir, "sft+kto")
    await training.curation.add("admin", domain)
    try:
        with pytest.raises(ValueError, match="or set TRAIN_OBJECTIVE=sft"):
            await training.start("admin")
    finally:
        await training.close()
