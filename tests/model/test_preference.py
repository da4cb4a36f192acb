"""Preference training from 👍/👎 (TRL's KTOTrainer): the objectives, their events, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from model.finetune import SFT_STAGE, FinetuneConfig, FinetuneJob, run_finetune
from model.preference import DESIRABLE_RATIO, KTO_FOLDER, class_weights, completion_logprobs
from model.versions import read_metadata

CONFIG = FinetuneConfig(
    objective="kto",
    epochs=2,
    learning_rate=3e-3,
    kto_learning_rate=2e-3,
    kto_epochs=4,
    block_size=32,
    batch_size=4,
    eval_every=5,
    checkpoint_every=3,
    sample_max_new_tokens=6,
    device="cpu",
)
LIKED = " paints the blue fence."
DISLIKED = " breaks the old window."
ROWS = [
    {
        "prompt": f"Robot number {i}",
        "completion": LIKED if i % 3 == 0 else DISLIKED,
        "label": i % 3 == 0,
    }
    for i in range(24)
]
TEXTS = [row["prompt"] + row["completion"] for row in ROWS if row["label"]] + [
    f"The garden has {i} flowers near the fence." for i in range(12)
]


def _job(base: Path, tmp: Path, config: FinetuneConfig = CONFIG) -> FinetuneJob:
    return FinetuneJob(
        base_path=str(base),
        base_version="base",
        texts=TEXTS,
        work_dir=str(tmp / "work"),
        output_dir=str(tmp / "ft-1"),
        version_name="ft-1",
        config=config,
        preferences=ROWS,
    )


def _margin(path: Path) -> float:
    """Mean log-prob of the liked completions minus that of the disliked ones."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    scores = completion_logprobs(model, tokenizer, ROWS)
    liked = [s for s, row in zip(scores, ROWS, strict=True) if row["label"]]
    disliked = [s for s, row in zip(scores, ROWS, strict=True) if not row["label"]]
    return sum(liked) / len(liked) - sum(disliked) / len(disliked)


@pytest.mark.parametrize("counts", [(10, 90), (90, 10), (3, 4), (50, 50), (1, 200)])
def test_class_weights_balance_thumbs_up_and_down(counts: tuple[int, int]) -> None:
    n_up, n_down = counts
    up_weight, down_weight = class_weights(n_up, n_down)
    assert 1.0 in (up_weight, down_weight)
    # the KTO paper's band for weighted 👍 over weighted 👎
    assert up_weight * n_up / (down_weight * n_down) == pytest.approx(DESIRABLE_RATIO)


def test_one_class_only_needs_no_weights() -> None:
    assert class_weights(0, 12) == class_weights(7, 0) == (1.0, 1.0)


def test_kto_run_moves_the_model_toward_liked_outputs(base: Path, tmp_path: Path) -> None:
    events: list[dict] = []
    result = run_finetune(_job(base, tmp_path), events.append)
    kinds = {e["event"] for e in events}
    assert {"step", "eval", "checkpoint", "done"} <= kinds
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, steps[-1]["total"] + 1))
    assert steps[-1]["progress"] == 1.0 and all(e["loss"] > 0 for e in steps)
    assert [e["step"] for e in events if e["event"] == "eval"] == [0, steps[-1]["total"]]
    # a loadable version whose liked completions gained on the disliked ones
    assert _margin(tmp_path / "ft-1") > _margin(base) + 1.0
    metadata = read_metadata(tmp_path / "ft-1")
    metrics = metadata["metrics"]
    assert metrics["objective"] == "kto" and metadata["parent"] == "base"
    assert metrics["baseline_eval_loss"] == pytest.approx(result["before"]["eval_loss"])
    assert metrics["desirable"] + metrics["undesirable"] == metrics["preference_rows"]
    assert metadata["heldout_texts"] and set(metadata["heldout_texts"]) <= set(TEXTS)


def test_too_few_rated_outputs_are_refused_with_advice(base: Path, tmp_path: Path) -> None:
    job = replace(_job(base, tmp_path), preferences=ROWS[:1])
    with pytest.raises(ValueError, match="rate more outputs, or set TRAIN_OBJECTIVE=sft"):
        run_finetune(job, lambda event: None)


def test_killed_kto_run_resumes_from_its_checkpoint(base: Path, tmp_path: Path) -> None:
    job = _job(base, tmp_path, replace(CONFIG, kto_epochs=6))
    job_file = tmp_path / "job.json"
    job_file.write_text(job.to_json())
    command = [sys.executable, "-m", "model.finetune", str(job_file)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None
    for line in first.stdout:  # kill it right after its second checkpoint
        event = json.loads(line)
        if event["event"] == "checkpoint" and event["step"] >= 6:
            first.kill()
            break
    first.wait(timeout=30)
    first.stdout.close()
    assert first.returncode != 0 and not Path(job.output_dir).exists()
    assert any((Path(job.work_dir) / KTO_FOLDER).glob("checkpoint-*"))

    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    events = [json.loads(line) for line in second.stdout.splitlines()]
    assert events[0]["event"] == "resumed" and events[0]["step"] >= 6
    steps = [e["step"] for e in events if e["event"] == "step"]
    assert steps[0] == events[0]["step"] + 1 and steps[-1] == events[0]["total"]
    assert events[-1]["event"] == "done"
    assert read_metadata(job.output_dir)["metrics"]["steps"] == events[0]["total"]


def test_sft_then_kto_is_one_run_on_one_progress_bar(base: Path, tmp_path: Path) -> None:
    events: list[dict] = []
    job = _job(base, tmp_path, replace(CONFIG, objective="sft+kto", kto_epochs=2))
    result = run_finetune(job, events.append)
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, len(steps) + 1))
    assert {e["total"] for e in steps} == {len(steps)}  # the same total from first to last
    assert all(a["progress"] < b["progress"] for a, b in pairwise(steps))
    # the SFT stage lowered the held-out loss; the report compares with the starting version
    stage = read_metadata(Path(job.work_dir) / SFT_STAGE)
    assert stage["metrics"]["eval_loss"] < stage["metrics"]["baseline_eval_loss"]
    assert result["before"]["version"] == "base"
    metrics = read_metadata(job.output_dir)["metrics"]
    assert metrics["objective"] == "sft+kto" and metrics["steps"] == len(steps)
    assert metrics["baseline_version"] == "base"
