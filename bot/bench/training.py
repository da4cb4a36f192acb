"""`gpt2bot bench training`: effective (non-padding) tokens/s of the fine-tuning recipe against
baselines on the same data and model.

- `recipe`: the real recipe (`model.finetune`), samples packed into full blocks with EOS.
- `padded_baseline`: one sample per row, padded to the block size (`padding="max_length"`,
  the common tutorial set-up), pad positions masked out of the loss.
- `hf_trainer_packed`: HF `Trainer` on the same packed blocks (is our loop worth having?).

Each variant runs in a fresh process so its peak RSS is its own. Random weights are fine:
speed does not depend on them.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import tempfile
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from model.bootstrap import train_tokenizer
from model.finetune import FinetuneConfig, FinetuneJob, TrainingRun

CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 64, "vocab_size": 2048},
    "124m": {"n_layer": 12, "n_head": 12, "n_embd": 768, "vocab_size": 50257},
}
STEPS = {"tiny": 30, "124m": 4}  # timed optimizer steps after one warm-up step
BLOCK_SIZE = 128
BATCH_SIZE = 8
VARIANTS = ("recipe", "padded_baseline", "hf_trainer_packed")


def _lines(data: str | None) -> list[str]:
    if data:
        text = Path(data).read_text(encoding="utf-8")
    else:
        text = resources.files("model.data").joinpath("sample-corpus.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _prepare(folder: Path, lines: list[str], config_name: str) -> None:
    tokenizer = train_tokenizer(lines, 2048)
    shape = CONFIGS[config_name]
    eos = tokenizer.eos_token_id
    config = GPT2Config(n_positions=1024, **shape, bos_token_id=eos, eos_token_id=eos)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _timed(step: Any, steps: int) -> float:
    step()  # warm-up: allocations, first-call overheads
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - started


def _recipe(run: TrainingRun, steps: int) -> tuple[float, int]:
    seconds = _timed(run.train_step, steps)
    return seconds, steps * BATCH_SIZE * run.blocks.size(1)


def _padded(run: TrainingRun, lines: list[str], steps: int) -> tuple[float, int]:
    eos = run.tokenizer.eos_token_id
    rows = [[*run.tokenizer.encode(line), eos][:BLOCK_SIZE] for line in lines]
    ids = torch.full((len(rows), BLOCK_SIZE), eos, dtype=torch.long)  # (N, T)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
    labels = ids.masked_fill(mask == 0, -100)
    position = {"i": 0}

    def step() -> None:
        start = position["i"] % max(1, len(rows) - BATCH_SIZE)
        position["i"] += BATCH_SIZE
        s = slice(start, start + BATCH_SIZE)
        loss = run.model(input_ids=ids[s], attention_mask=mask[s], labels=labels[s]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)

    per_step = mask.sum().item() / len(rows) * BATCH_SIZE  # mean real tokens per batch
    return _timed(step, steps), int(per_step * steps)


def _trainer(run: TrainingRun, steps: int, out: Path) -> tuple[float, int]:
    from transformers import Trainer, TrainingArguments

    blocks = run.blocks
    dataset = [{"input_ids": b, "labels": b} for b in blocks]
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=BATCH_SIZE,
        max_steps=steps + 1,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=run.model, args=args, train_dataset=dataset)
    started = time.perf_counter()
    trainer.train()
    seconds = (time.perf_counter() - started) * steps / (steps + 1)  # drop ~one step's share
    return seconds, steps * BATCH_SIZE * blocks.size(1)


def _measure(config_name: str, variant: str, data: str | None) -> dict[str, float]:
    """One variant in this (fresh) process."""
    os.dup2(2, 1)  # libraries print progress here; the parent's stdout carries only the JSON
    torch.manual_seed(0)
    lines = _lines(data)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        _prepare(folder, lines, config_name)
        config = replace(
            FinetuneConfig(), block_size=BLOCK_SIZE, batch_size=BATCH_SIZE, device="cpu"
        )
        job = FinetuneJob(
            str(folder), "bench", lines, tmp, str(Path(tmp) / "out"), "bench", config=config
        )
        run = TrainingRun(job, lambda _event: None)
        steps = STEPS[config_name]
        if variant == "recipe":
            seconds, tokens = _recipe(run, steps)
        elif variant == "padded_baseline":
            seconds, tokens = _padded(run, lines, steps)
        else:
            seconds, tokens = _trainer(run, steps, Path(tmp) / "trainer")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"tokens_per_s": round(tokens / seconds, 1), "peak_rss_mb": round(peak_kb / 1024, 1)}


def run_training_bench(data: str | None, configs: tuple[str, ...]) -> dict[str, Any]:
    """The benchmark JSON, one entry per model config."""
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown config(s) {unknown}: use {', '.join(CONFIGS)}")
    lines = _lines(data)
    report: dict[str, Any] = {
        "data": data or "bundled sample corpus",
        "lines": len(lines),
        "block_size": BLOCK_SIZE,
        "batch_size": BATCH_SIZE,
        "torch_threads": torch.get_num_threads(),
        "configs": {},
    }
    context = multiprocessing.get_context("spawn")
    for name in configs:
        results = {}
        for variant in VARIANTS:
            with context.Pool(1) as pool:
                results[variant] = pool.apply(_measure, (name, variant, data))
        recipe = results["recipe"]["tokens_per_s"]
        report["configs"][name] = {
            "steps": STEPS[name],
            "results": results,
            "ratios": {
                "recipe_vs_padded": round(recipe / results["padded_baseline"]["tokens_per_s"], 2),
                "recipe_vs_hf_trainer": round(
                    recipe / results["hf_trainer_packed"]["tokens_per_s"], 2
                ),
            },
        }
    return report
