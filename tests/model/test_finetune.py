"""The fine-tuning recipe: it learns the domain, and a killed run resumes from its checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from admin.supervisor import training_command
from model.evaluate import pack_cyclic
from model.finetune import CHECKPOINT_FILE, FinetuneConfig, FinetuneJob, run_finetune
from model.versions import read_metadata

CONFIG = FinetuneConfig(
    epochs=3,
    learning_rate=3e-3,
    block_size=32,
    batch_size=4,
    eval_every=5,
    checkpoint_every=2,
    sample_max_new_tokens=6,
    device="cpu",
)
DOMAIN = [f"Robot number {i} likes to paint the blue fence in the garden." for i in range(30)]


def _job(base: Path, tmp: Path, config: FinetuneConfig = CONFIG) -> FinetuneJob:
    return FinetuneJob(
        base_path=str(base),
        base_version="base",
        texts=DOMAIN,
        work_dir=str(tmp / "work"),
        output_dir=str(tmp / "ft-1"),
        version_name="ft-1",
        config=config,
    )


def test_packing_puts_eos_between_samples_and_wastes_nothing() -> None:
    blocks = pack_cyclic([[1, 2, 3], [4, 5]], eos_id=0, block_size=4)
    assert blocks.tolist() == [[1, 2, 3, 0], [4, 5, 0, 1]]  # last block completed from the start


def test_training_lowers_heldout_loss_and_saves_a_version(base: Path, tmp_path: Path) -> None:
    events: list[dict] = []
    result = run_finetune(_job(base, tmp_path), events.append)
    before, after = result["before"]["eval_loss"], result["after"]["eval_loss"]
    assert after < before - 0.5, (before, after)
    steps = [e for e in events if e["event"] == "step"]
    assert steps[-1]["progress"] == 1.0 and all(e["eta_s"] >= 0 for e in steps)
    assert len(result["after"]["samples"]) == 3
    metadata = read_metadata(tmp_path / "ft-1")
    assert metadata["parent"] == "base"
    assert metadata["metrics"]["baseline_eval_loss"] == pytest.approx(before)
    assert metadata["heldout_texts"] and set(metadata["heldout_texts"]) <= set(DOMAIN)


def test_killed_run_resumes_from_its_checkpoint(base: Path, tmp_path: Path) -> None:
    config = replace(CONFIG, epochs=5, checkpoint_every=3)
    job = _job(base, tmp_path, config)
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
    assert first.returncode != 0
    killed_at = torch.load(Path(job.work_dir) / CHECKPOINT_FILE, weights_only=False)["step"]
    assert killed_at >= 6 and not Path(job.output_dir).exists()

    started = time.monotonic()
    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr[-2000:]
    events = [json.loads(line) for line in second.stdout.splitlines()]
    assert events[0] == {"event": "resumed", "step": killed_at, "total": events[0]["total"]}
    steps = [e["step"] for e in events if e["event"] == "step"]
    assert steps[0] == killed_at + 1 and steps[-1] == events[0]["total"]
    done = events[-1]
    assert done["event"] == "done" and done["after"]["eval_loss"] < done["before"]["eval_loss"]
    assert time.monotonic() - started < 120


def test_two_processes_share_each_step_and_one_of_them_reports(base: Path, tmp_path: Path) -> None:
    """TRAIN_PROCESSES=2: the command the supervisor runs (`accelerate launch`, two CPU
    processes over gloo here) trains one version; each step takes twice the blocks, so an
    epoch has half the steps, and every event comes once."""
    config = replace(CONFIG, epochs=2, batch_size=2, eval_every=100, checkpoint_every=100)
    single = replace(config, max_steps=0)
    job = _job(base, tmp_path, single)
    job_file = tmp_path / "job.json"
    job_file.write_text(job.to_json())
    done = subprocess.run(
        training_command(job_file, processes=2), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    steps = [e["step"] for e in events if e["event"] == "step"]
    blocks = read_metadata(tmp_path / "ft-1")["metrics"]["train_blocks"]
    per_epoch = -(-blocks // (config.batch_size * 2))  # ceil: two processes' batches a step
    assert steps == list(range(1, 2 * per_epoch + 1))  # each step reported once, by one process
    assert [e["event"] for e in events].count("done") == 1
    final = events[-1]
    assert final["event"] == "done" and final["after"]["eval_loss"] < final["before"]["eval_loss"]
    assert len(final["after"]["samples"]) == 3


def test_bf16_training_reaches_the_heldout_loss_of_fp32(base: Path, tmp_path: Path) -> None:
    """TRAIN_DTYPE=bf16 (autocast; fp32 weights and optimizer state) after the same steps:
    the held-out loss within 1 % of fp32's (the issue's quality check)."""
    losses = {}
    for dtype in ("fp32", "bf16"):
        config = replace(CONFIG, dtype=dtype, eval_every=1000, checkpoint_every=1000)
        result = run_finetune(_job(base, tmp_path / dtype, config), lambda _event: None)
        assert result["metrics"]["train_dtype"] == {"fp32": "float32", "bf16": "bfloat16"}[dtype]
        losses[dtype] = result["after"]["eval_loss"]
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.01), losses
    assert losses["fp32"] < run_before(base, tmp_path) - 0.5  # both learned


def run_before(base: Path, tmp_path: Path) -> float:
    metadata = read_metadata(tmp_path / "fp32" / "ft-1")
    return float(metadata["metrics"]["baseline_eval_loss"])


def test_versions_are_evaluated_in_fp32_whatever_precision_they_train_in(base: Path) -> None:
    """The gate compares held-out losses measured in fp32; a run that trains under bf16
    autocast reports its own the same way (and samples without re-casting every weight)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from model.device import training_accelerator
    from model.evaluate import heldout_loss

    tokenizer = AutoTokenizer.from_pretrained(base)
    trained = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    plain = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    accelerator = training_accelerator(torch.device("cpu"), torch.bfloat16)
    accelerator.prepare(trained, torch.optim.AdamW(trained.parameters()))
    ids = torch.tensor([tokenizer.encode(DOMAIN[0])])
    with torch.no_grad():  # prepared: its forward now runs under bf16 autocast
        assert not torch.equal(trained(input_ids=ids).logits, plain(input_ids=ids).logits)
    texts = DOMAIN[:5]
    assert heldout_loss(trained, tokenizer, texts, 32) == heldout_loss(plain, tokenizer, texts, 32)
