"""Registry: the promotion gate both ways, rollback, and a hot-swap that drops no request."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from admin.registry import PromotionRefused, Registry
from model.backends.base import GenerationRequest, SamplingParams
from model.backends.fake import ScriptedBackend
from model.backends.local import LocalBackend
from model.config import ModelConfig
from model.split import digest
from storage import Database, ModelVersionRepository


def _candidate(
    versions: ModelVersionRepository, model_dir: Path, name: str, loss: float, baseline: float
) -> None:
    shutil.copytree(model_dir / "tiny-1", model_dir / name)
    metrics = {"eval_loss": loss, "baseline_version": "tiny-1", "baseline_eval_loss": baseline}
    versions.add(name, str(model_dir / name), "bootstrap", parent="tiny-1", metrics=metrics)


async def test_gate_promotes_a_better_candidate(
    db: Database, versions: ModelVersionRepository, model_dir: Path
) -> None:
    _candidate(versions, model_dir, "better", loss=2.0, baseline=2.5)
    record, reason = await Registry(db, tolerance=0.02, backend=ScriptedBackend()).promote("better")
    assert record.status == "active" and versions.active().name == "better"  # type: ignore[union-attr]
    assert "not worse than" in reason


async def test_gate_refuses_a_worse_candidate_unless_forced(
    db: Database, versions: ModelVersionRepository, model_dir: Path
) -> None:
    _candidate(versions, model_dir, "worse", loss=2.6, baseline=2.5)
    registry = Registry(db, tolerance=0.02, backend=ScriptedBackend())
    with pytest.raises(PromotionRefused, match=r"worse than the active tiny-1's 2\.5000"):
        await registry.promote("worse")
    assert versions.active().name == "tiny-1"  # type: ignore[union-attr]
    # within tolerance it passes; forced it passes regardless
    lenient = Registry(db, tolerance=0.2, backend=ScriptedBackend())
    assert (await lenient.judge(versions.get("worse"))).allowed  # type: ignore[arg-type]
    _, reason = await registry.promote("worse", force=True)
    assert reason.startswith("forced") and versions.active().name == "worse"  # type: ignore[union-attr]


async def test_gate_evaluates_on_heldout_when_compared_with_another_version(
    db: Database, versions: ModelVersionRepository, model_dir: Path
) -> None:
    """A candidate measured against an older version is re-evaluated against the active one."""
    _candidate(versions, model_dir, "other", loss=1.0, baseline=9.0)
    versions.update_metrics("other", {"baseline_version": "someone-else"})
    (model_dir / "tiny-1" / "metadata.json").write_text('{"heldout_texts": ["A model is."]}')
    registry = Registry(db, tolerance=0.0, backend=ScriptedBackend())
    decision = await registry.judge(versions.get("other"))  # type: ignore[arg-type]
    # identical weights: equal losses on the same held-out text, so allowed at zero tolerance
    assert decision.allowed and decision.candidate_loss == pytest.approx(decision.active_loss)


async def test_gate_never_judges_on_texts_the_active_version_trained_on(
    db: Database, versions: ModelVersionRepository, model_dir: Path
) -> None:
    _candidate(versions, model_dir, "other", loss=1.0, baseline=9.0)
    versions.update_metrics("other", {"baseline_version": "someone-else"})
    (model_dir / "other" / "metadata.json").write_text('{"heldout_texts": ["Seen before."]}')
    trained = json.dumps({"trained_digests": [digest("Seen before.")]})
    (model_dir / "tiny-1" / "metadata.json").write_text(trained)
    registry = Registry(db, tolerance=0.0, backend=ScriptedBackend())
    decision = await registry.judge(versions.get("other"))  # type: ignore[arg-type]
    assert decision.reason == "no held-out text that neither version trained on"
    assert decision.candidate_loss is None


async def test_gate_falls_back_to_the_active_versions_unseen_texts(
    db: Database, versions: ModelVersionRepository, model_dir: Path
) -> None:
    """When the active version trained on every candidate held-out text, the gate judges on
    the active version's own held-out texts instead of waving the candidate through."""
    _candidate(versions, model_dir, "other", loss=1.0, baseline=9.0)
    versions.update_metrics("other", {"baseline_version": "someone-else"})
    (model_dir / "other" / "metadata.json").write_text('{"heldout_texts": ["Seen before."]}')
    active = {"trained_digests": [digest("Seen before.")], "heldout_texts": ["Fresh text."]}
    (model_dir / "tiny-1" / "metadata.json").write_text(json.dumps(active))
    registry = Registry(db, tolerance=0.0, backend=ScriptedBackend())
    decision = await registry.judge(versions.get("other"))  # type: ignore[arg-type]
    assert decision.candidate_loss is not None and decision.active_loss is not None


async def test_rollback_returns_to_the_previous_version(
    db: Database, versions: ModelVersionRepository, model_dir: Path
) -> None:
    _candidate(versions, model_dir, "v2", loss=1.0, baseline=2.0)
    backend = ScriptedBackend(model_version="tiny-1")
    registry = Registry(db, tolerance=0.0, backend=backend)
    await registry.promote("v2")
    record = await registry.rollback("admin")
    assert record.name == "tiny-1" and versions.active().name == "tiny-1"  # type: ignore[union-attr]
    assert versions.get("v2").status == "retired"  # type: ignore[union-attr]
    # each switch hot-swapped the serving backend too
    assert [name for name, _ in backend.swaps] == ["v2", "tiny-1"]
    assert backend.model_version == "tiny-1"


async def test_unknown_or_unsafe_version_names(
    db: Database, versions: ModelVersionRepository
) -> None:
    registry = Registry(db, tolerance=0.0, backend=ScriptedBackend())
    with pytest.raises(ValueError, match="invalid model version name"):
        await registry.promote("../etc")
    with pytest.raises(LookupError, match="no model version named"):
        await registry.promote("nope")


async def test_hot_swap_under_concurrent_generation_loses_no_request(
    db: Database, versions: ModelVersionRepository, model_dir: Path
) -> None:
    _candidate(versions, model_dir, "v2", loss=1.0, baseline=2.0)
    backend = LocalBackend(ModelConfig(device="cpu"), "tiny-1", str(model_dir / "tiny-1"))
    await backend.start()
    registry = Registry(db, tolerance=0.0, backend=backend)
    try:
        params = SamplingParams(max_new_tokens=16, seed=3)
        # the first request is short: the batching engine finishes it while the rest still run
        lengths = [2] + [96] * 23
        handles = [
            backend.submit(
                GenerationRequest(f"Prompt {i}", replace(params, max_new_tokens=n), f"u{i}")
            )
            for i, n in enumerate(lengths)
        ]
        tasks = [asyncio.ensure_future(h.result()) for h in handles]
        await tasks[0]  # generation is under way; swap while the rest are queued or running
        in_flight = sum(not t.done() for t in tasks)
        await registry.promote("v2")
        later = [
            backend.submit(GenerationRequest("After", params, user=f"late{i}")) for i in range(3)
        ]
        results = await asyncio.gather(*tasks, *(h.result() for h in later))
    finally:
        await backend.close()
    assert in_flight > 10
    assert len(results) == 27 and all(r.texts for r in results)
    served_by = [r.model_version for r in results]
    assert served_by[0] == "tiny-1" and served_by[-3:] == ["v2"] * 3
    assert backend.model_version == "v2" and versions.active().name == "v2"  # type: ignore[union-attr]


async def test_gate_refuses_a_candidate_flagged_more_often_on_the_fixed_prompts(
    db: Database, versions: ModelVersionRepository, model_dir: Path
) -> None:
    """Lower loss is not enough when its samples are flagged more often than the active's."""
    _candidate(versions, model_dir, "rude", loss=2.0, baseline=2.5)
    versions.update_metrics("rude", {"flagged_share": 2 / 3, "baseline_flagged_share": 0.0})
    strict = Registry(db, tolerance=0.02, backend=ScriptedBackend(), flagged_tolerance=0.0)
    with pytest.raises(PromotionRefused, match=r"flagged more often than .* \(67% vs 0%"):
        await strict.promote("rude")
    lenient = Registry(db, tolerance=0.02, backend=ScriptedBackend(), flagged_tolerance=0.7)
    decision = await lenient.judge(versions.get("rude"))  # type: ignore[arg-type]
    assert decision.allowed and "no more often than" in decision.reason
    _, reason = await strict.promote("rude", force=True)
    assert reason.startswith("forced") and versions.active().name == "rude"  # type: ignore[union-attr]
