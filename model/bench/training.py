"""`gpt2bot bench training`: what a community waits for when it retrains, against the library
the recipe replaced and against the machine.

Variants, each in a fresh process (its own peak RSS and thread pool), `STEPS` timed optimizer
steps after one warm-up, run in turn and repeated (`REPEATS`): the median counts, `runs` shows
the spread (this machine is shared and drifts between runs).
- `recipe`: the real recipe (`model.finetune.FinetuneRun.train_step`) at `TRAIN_DTYPE=auto`
  (bf16 autocast where the hardware has native bf16), samples packed into full blocks;
- `recipe_fp32`: the same in fp32. The two start from the same weights and take the same
  batches, so their held-out losses after the same steps are the bf16 quality check;
- `padded_baseline`: one sample per row, padded to the block size (`padding="max_length"`, the
  common tutorial set-up), pad positions masked out of the loss, at the recipe's precision;
- `hf_trainer`: HF `Trainer` on the same packed blocks at its best precision here (`bf16=True`
  where the recipe's auto picks bf16), with its default fused AdamW; `hf_trainer_fp32`.

`ceiling`: a training-shaped multiply (B·T × C @ C × 4C) per precision, and the tokens/s it
implies if every multiply of a step (6 FLOPs per weight per token: 2 forward, 4 backward) ran
at that rate; attention, norms, the loss and the optimizer are left out, so no recipe reaches it.
`time_to_train_100k_tokens`: the wall time of a real `gpt2bot train --epochs 1` over 100,000
tokens of curated text (tokenize, train, evaluate, save, register) on the 124M config.
Random weights are fine: speed does not depend on them.
"""

from __future__ import annotations

import functools
import itertools
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from model.bench.ceiling import fastest_s, weight_elements
from model.bench.measure import machine
from model.bootstrap import train_tokenizer
from model.device import forget_training_precision, resolve_training_dtype
from model.finetune import FinetuneConfig, FinetuneJob, FinetuneRun

CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 64, "vocab_size": 2048},
    "124m": {"n_layer": 12, "n_head": 12, "n_embd": 768, "vocab_size": 50257},
}
STEPS = {"tiny": 30, "124m": 20}  # timed optimizer steps after one warm-up step
REPEATS = {"tiny": 1, "124m": 2}  # rounds of every variant, one after the other
BLOCK_SIZE = 128
BATCH_SIZE = 8
# variant -> (how it trains, TRAIN_DTYPE)
VARIANTS = {
    "recipe": ("recipe", "auto"),
    "recipe_fp32": ("recipe", "fp32"),
    "padded_baseline": ("padded", "auto"),
    "hf_trainer": ("trainer", "auto"),
    "hf_trainer_fp32": ("trainer", "fp32"),
}
TRAIN_TOKENS = 100_000  # curated text of `time_to_train_100k_tokens`
GEMM_CALLS = 10  # timed multiplies per precision for the ceiling (the fastest counts)
QUALITY_TOLERANCE = 0.01  # bf16's held-out loss within 1 % of fp32's


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


def _padded(run: FinetuneRun, lines: list[str], steps: int) -> tuple[float, int]:
    eos = run.tokenizer.eos_token_id
    rows = [[*run.tokenizer.encode(line), eos][:BLOCK_SIZE] for line in lines]
    ids = torch.full((len(rows), BLOCK_SIZE), eos, dtype=torch.long)  # (N, T)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
    labels = ids.masked_fill(mask == 0, -100)
    position = {"i": 0}

    def step() -> None:  # the recipe's model, precision and optimizer; a plain loop
        start = position["i"] % max(1, len(rows) - BATCH_SIZE)
        position["i"] += BATCH_SIZE
        s = slice(start, start + BATCH_SIZE)
        with run.accelerator.autocast():
            loss = run.model(input_ids=ids[s], attention_mask=mask[s], labels=labels[s]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)

    per_step = mask.sum().item() / len(rows) * BATCH_SIZE  # mean real tokens per batch
    return _timed(step, steps), int(per_step * steps)


def _trainer(run: FinetuneRun, steps: int, out: Path) -> tuple[float, int]:
    from transformers import Trainer, TrainingArguments

    blocks = run.blocks
    dataset = [{"input_ids": b, "labels": b} for b in blocks]
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=BATCH_SIZE,
        max_steps=steps + 1,
        use_cpu=True,
        bf16=run.dtype == torch.bfloat16,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    forget_training_precision()  # the Trainer's own accelerator takes `bf16` above
    trainer = Trainer(model=run.model, args=args, train_dataset=dataset)
    started = time.perf_counter()
    trainer.train()
    seconds = (time.perf_counter() - started) * steps / (steps + 1)  # drop ~one step's share
    return seconds, steps * BATCH_SIZE * blocks.size(1)


def _measure(config_name: str, variant: str, data: str | None) -> dict[str, Any]:
    """One variant in this (fresh) process."""
    os.dup2(2, 1)  # libraries print progress here; the parent's stdout carries only the JSON
    torch.manual_seed(0)
    lines = _lines(data)
    kind, dtype = VARIANTS[variant]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        _prepare(folder, lines, config_name)
        config = replace(
            FinetuneConfig(), block_size=BLOCK_SIZE, batch_size=BATCH_SIZE, device="cpu"
        )
        config = replace(config, dtype=dtype)
        job = FinetuneJob(
            str(folder), "bench", lines, tmp, str(Path(tmp) / "out"), "bench", config=config
        )
        run = FinetuneRun(job, lambda _event: None)
        steps = STEPS[config_name]
        quality = {}
        if kind == "recipe":
            before = run.evaluate()
            seconds = _timed(run.train_step, steps)
            tokens = steps * BATCH_SIZE * run.blocks.size(1)
            quality = {"heldout_loss_before": round(before, 4)}
            quality["heldout_loss_after"] = round(run.evaluate(), 4)
        elif kind == "padded":
            seconds, tokens = _padded(run, lines, steps)
        else:
            seconds, tokens = _trainer(run, steps, Path(tmp) / "trainer")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "tokens_per_s": round(tokens / seconds, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "dtype": str(run.dtype).removeprefix("torch."),
        **quality,
    }


def _ceiling(config_name: str) -> dict[str, Any]:
    """GFLOP/s of a training-shaped multiply per precision (fresh process) and the tokens/s
    a step would reach if all of its multiplies ran at that rate."""
    shape = CONFIGS[config_name]
    width, rows = shape["n_embd"], BATCH_SIZE * BLOCK_SIZE
    flops_per_token = 6.0 * weight_elements(GPT2Config(**shape))
    out: dict[str, Any] = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x, w = torch.randn(rows, width).to(dtype), torch.randn(width, 4 * width).to(dtype)
        multiply = functools.partial(torch.matmul, x, w)
        rate = 2.0 * rows * width * 4 * width / fastest_s(multiply, GEMM_CALLS, 3) / 1e9
        out[name] = {
            "gemm_shape": f"{rows}x{width} @ {width}x{4 * width}",
            "gemm_gflop_per_s": round(rate, 1),
            "tokens_per_s": round(rate * 1e9 / flops_per_token, 1),
        }
    best = "bf16" if resolve_training_dtype(torch.device("cpu")) == torch.bfloat16 else "fp32"
    return {"precision": best, "tokens_per_s": out[best]["tokens_per_s"], "by_dtype": out}


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["tokens_per_s"] for r in runs]
    median = {**runs[0], "tokens_per_s": round(statistics.median(rates), 1)}
    median["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    median["runs"] = rates
    return median


def _in_fresh_process(function: Any, *args: Any) -> Any:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def _quality(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """bf16's held-out loss after the same steps as fp32 (both from the same weights)."""
    auto, fp32 = results["recipe"], results["recipe_fp32"]
    difference = (auto["heldout_loss_after"] - fp32["heldout_loss_after"]) / abs(
        fp32["heldout_loss_after"]
    )
    return {
        "dtype": auto["dtype"],
        "heldout_loss_before": fp32["heldout_loss_before"],
        "heldout_loss_after": {
            "fp32": fp32["heldout_loss_after"],
            "auto": auto["heldout_loss_after"],
        },
        "relative_difference": round(difference, 5),
        "within_1_percent": abs(difference) <= QUALITY_TOLERANCE,
    }


def _config_report(name: str, data: str | None) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    for _ in range(REPEATS[name]):
        for variant in VARIANTS:
            runs[variant].append(_in_fresh_process(_measure, name, variant, data))
    results = {variant: _median(measured) for variant, measured in runs.items()}
    ceiling = _in_fresh_process(_ceiling, name)
    recipe = results["recipe"]["tokens_per_s"]
    return {
        "steps": STEPS[name],
        "repeats": REPEATS[name],
        "results": results,
        "ceiling": ceiling,
        "quality": _quality(results),
        "ratios": {
            "recipe_vs_padded": round(recipe / results["padded_baseline"]["tokens_per_s"], 2),
            "recipe_vs_hf_trainer": round(recipe / results["hf_trainer"]["tokens_per_s"], 2),
            "recipe_vs_recipe_fp32": round(recipe / results["recipe_fp32"]["tokens_per_s"], 2),
            "recipe_vs_ceiling": round(recipe / ceiling["tokens_per_s"], 3),
        },
    }


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bot.cli", "--env-file", os.devnull, *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def _samples_of(lines: list[str], tokenizer: Any, tokens: int) -> tuple[list[str], int]:
    """Distinct samples (curation drops repeats) of `tokens` tokens in all, EOS included:
    pairs of the data's lines."""
    samples, total = [], 0
    for first, second in itertools.permutations(lines, 2):
        sample = f"{first} {second}"
        samples.append(sample)
        total += len(tokenizer.encode(sample)) + 1
        if total >= tokens:
            break
    return samples, total


def _timed_train(env: dict[str, str], data_file: str) -> dict[str, Any]:
    """`gpt2bot train --epochs 1` in this (fresh) process's child: wall time, and the peak RSS
    of its largest process (the training run)."""
    started = time.perf_counter()
    done = _cli(env, "train", "--data", data_file, "--epochs", "1", "--json")
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"gpt2bot train failed: {done.stderr[-2000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(peak_kb / 1024, 1), "run": summary}


def _time_to_train(data: str | None) -> dict[str, Any]:
    """A real `gpt2bot train` over `TRAIN_TOKENS` tokens of curated text on the 124M config,
    on its own database and model folder; the base model is prepared first, untimed."""
    from transformers import AutoTokenizer

    lines = _lines(data)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base-124m"
        _prepare(base, lines, "124m")
        samples, tokens = _samples_of(lines, AutoTokenizer.from_pretrained(base), TRAIN_TOKENS)
        data_file = Path(tmp) / "curated.txt"
        data_file.write_text("\n".join(samples) + "\n", encoding="utf-8")
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "MODEL_DIR": f"{tmp}/models",
            "BASE_MODEL": str(base),
            "HF_HUB_OFFLINE": "1",
            "LOG_LEVEL": "WARNING",
        }
        # registers the base as the active version, as a running bot would have: not timed
        prepared = _cli(env, "generate", "Hello", "--max-new-tokens", "1")
        if prepared.returncode != 0:
            raise RuntimeError(f"gpt2bot generate failed: {prepared.stderr[-2000:]}")
        timed = _in_fresh_process(_timed_train, env, str(data_file))
    run = timed.pop("run")
    return {
        **timed,
        "samples": len(samples),
        "tokens": tokens,
        "status": run.get("status"),
        "run": run,
    }


def run_training_bench(data: str | None, configs: tuple[str, ...]) -> dict[str, Any]:
    """The benchmark JSON, one entry per model config, and the time to train 100,000 tokens
    when the 124M config is measured."""
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown config(s) {unknown}: use {', '.join(CONFIGS)}")
    lines = _lines(data)
    report: dict[str, Any] = {
        "data": data or "bundled sample corpus",
        "lines": len(lines),
        "block_size": BLOCK_SIZE,
        "batch_size": BATCH_SIZE,
        "machine": machine(),
        "loadavg_1min_start": round(os.getloadavg()[0], 2),
        "configs": {name: _config_report(name, data) for name in configs},
    }
    if "124m" in configs:
        report["time_to_train_100k_tokens"] = _time_to_train(data)
        report["time_to_train_100k_tokens_s"] = report["time_to_train_100k_tokens"]["seconds"]
    report["loadavg_1min_end"] = round(os.getloadavg()[0], 2)
    return report
