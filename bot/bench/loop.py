"""`gpt2bot bench loop`: does the learning loop learn what raters like?

Simulated raters prefer outputs that mention a topic word. Each cycle generates a batch through
the real chat use-case, the raters rate it through the real rating path, the learning loop
retrains on the well-rated outputs (ratings -> curated samples), the gate promotes, the engine
hot-swaps, and the next batch is measured. Cycle 0 is the model before any retraining.

Arms run side by side in one run: each a training objective (`TRAIN_OBJECTIVE`) and method
(`TRAIN_METHOD`: full fine-tuning or a LoRA adapter), from the same starting model with the same
simulated raters, each in its own database and model folder. The loop is noisy (one cycle's gate
verdict turns on a few held-out texts), so each arm runs with several seeds (`--seeds`: the
training seed and the sampling seeds change) and the report gives each number's mean and
spread over them.

Everything runs in a temporary folder: its own databases, the offline bootstrap model (built
once, shared by every objective as its starting version). The report ends with the A/B
simulation ("ab_simulation", `bot/bench/ab_simulation.py`): the decision rule that compares
versions on live ratings, at the configured thresholds.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch

from admin.config import ABConfig, LearningConfig
from bot.app import App
from bot.bench.ab_simulation import simulate_ab
from bot.chat import ChatConfig, ChatService, Origin
from bot.settings import Settings
from model.bench.measure import machine
from model.bootstrap import BootstrapConfig, build_bootstrap
from model.config import FinetuneConfig, ModelConfig
from storage import ModelVersionRepository, StorageConfig

log = logging.getLogger(__name__)

TOPIC_WORD = "data"  # the visible property the simulated raters like
PROMPTS = (
    "A language model",
    "Researchers often",
    "The training process",
    "A neural network",
    "In practice,",
    "The main idea is that",
    "Good results come from",
    "Before deployment,",
    "Engineers usually",
    "One common mistake is",
    "The results show",
    "A simple approach",
)
SAMPLES_PER_PROMPT = 4  # the most one request may ask for
ROUNDS = 4  # requests per prompt and cycle: 12 x 4 x 4 = 192 generations (less noise)
RATERS = ("rater-a", "rater-b", "rater-c")
LOOP_FINETUNE = FinetuneConfig(
    epochs=10,  # a cycle's data is a few dozen short texts: a handful of blocks per epoch
    learning_rate=1e-3,  # the bootstrap model was trained from scratch at 2e-3
    block_size=64,
    batch_size=8,
    eval_every=5,  # early stopping keeps the best held-out weights as the data grows
    early_stop_patience=3,
    checkpoint_every=1000,  # short runs: nothing worth resuming
    sample_max_new_tokens=20,
    kto_epochs=2,  # a cycle's rated outputs are a few hundred rows: 2 passes
    kto_learning_rate=2e-5,  # 1e-4 raised the held-out loss by 0.8 in one cycle: refused
    device="cpu",
)
# arm -> (TRAIN_OBJECTIVE, TRAIN_METHOD)
ARMS = {
    "sft": ("sft", "full"),
    "sft-lora": ("sft", "lora"),
    "kto": ("kto", "full"),
    "kto-lora": ("kto", "lora"),
    "sft+kto": ("sft+kto", "full"),
}
SEEDS = 3  # runs of each arm: the loop's numbers move by tens of points from run to run
SEED_STRIDE = 10_000  # a seed's sampling seeds: the base ones plus seed x this
# LoRA arms: an adapter moves far less per step than full fine-tuning, so it takes a larger rate
# (not tuned beyond a few tries on this bench: rank 16, alpha 32, on every projection)
LORA_LEARNING_RATE, LORA_KTO_LEARNING_RATE = 5e-3, 2e-4
# simulated raters rate hundreds of outputs a day and there is no reviewer: no daily cap, no
# review queue (the poisoning bench measures those defences); 3 of 3 still clear the bound
LOOP_LEARNING = LearningConfig(
    rating_min_score=2,
    rating_min_raters=2,
    rating_daily_cap=0,
    auto_approve=True,
    finetune=LOOP_FINETUNE,
)


def _liked(text: str) -> bool:
    return TOPIC_WORD in text.lower()


async def _cycle(chat: ChatService, cycle: int, seed: int = 0) -> dict[str, Any]:
    """Generate a batch, let the raters rate it; the share liked and the mean rating."""
    origin = Origin(platform="bench", user_id="bench")
    scores, liked = [], 0
    offset = seed * SEED_STRIDE
    requests = [
        (prompt, offset + 100 * r + i) for r in range(ROUNDS) for i, prompt in enumerate(PROMPTS)
    ]
    for prompt, sampling_seed in requests:  # the same seeds every cycle: only the model changes
        params = {
            "samples": SAMPLES_PER_PROMPT,
            "max_new_tokens": 30,
            "temperature": 1.0,
            "seed": sampling_seed,
        }
        finished = await chat.generate(origin, prompt, params)
        for generation in finished.generations:
            good = _liked(generation.output)
            liked += good
            for rater in RATERS:
                await chat.rate(generation.id, rater, "👍" if good else "👎")
                scores.append(1 if good else -1)
    total = len(requests) * SAMPLES_PER_PROMPT
    return {
        "cycle": cycle,
        "model_version": chat.backend.model_version,
        "mean_rating": round(sum(scores) / len(scores), 4),
        "property_share": round(liked / total, 4),
        "generations": total,
    }


async def run_loop_bench(
    cycles: int,
    base: str | None = None,
    arms: Sequence[str] = tuple(ARMS),
    ab: ABConfig | None = None,
    seeds: int = SEEDS,
) -> dict[str, Any]:
    """Cycle 0 plus `cycles` retrain cycles for each arm and seed, from `base` (a model folder)
    or a fresh bootstrap model; then the A/B simulation at the thresholds of `ab`. `cycles`,
    `runs` and `property_share_rises_every_cycle` are the default arm's first seed's."""
    unknown = [arm for arm in arms if arm not in ARMS]
    if unknown:
        raise ValueError(f"unknown loop bench arm(s) {unknown}: use {', '.join(ARMS)}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        start = base or str(Path(tmp) / "bootstrap")
        if base is None:
            await asyncio.to_thread(_build_start, Path(start))
        prepare_s = time.perf_counter() - started
        results = {}
        for arm in arms:
            runs = []
            for seed in range(seeds):
                log.info("loop bench: arm %s, seed %d", arm, seed)
                runs.append(await _arm_loop(arm, seed, cycles, start, Path(tmp)))
            results[arm] = _summary(arm, runs)
    defaults = FinetuneConfig()
    default = next(
        a for a, chosen in ARMS.items() if chosen == (defaults.objective, defaults.method)
    )
    main = (results.get(default) or next(iter(results.values())))["seeds"][0]
    return {
        "topic_word": TOPIC_WORD,
        "base": base or "bootstrap (built for this run)",
        "prepare_seconds": round(prepare_s, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "seeds": seeds,
        "default_arm": default,
        "cycles": main["cycles"],
        "runs": main["runs"],
        "property_share_rises_every_cycle": main["property_share_rises_every_cycle"],
        "arms": results,
        "finetune": asdict(LOOP_FINETUNE),
        "lora": {"learning_rate": LORA_LEARNING_RATE, "kto_learning_rate": LORA_KTO_LEARNING_RATE},
        "ab_simulation": simulate_ab(ab or ABConfig()),
        "machine": machine(),
    }


def _build_start(folder: Path) -> None:
    """The bootstrap model every arm starts from, on one CPU thread: a small model on a
    busy 2-core machine steps far faster on one thread than on two (see `model.finetune`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        build_bootstrap(folder, config=BootstrapConfig())
    finally:
        torch.set_num_threads(threads)


def _arm_config(arm: str, seed: int) -> FinetuneConfig:
    objective, method = ARMS[arm]
    config = replace(
        LOOP_FINETUNE, objective=objective, method=method, seed=LOOP_FINETUNE.seed + seed
    )
    if method != "lora":
        return config
    return replace(
        config, learning_rate=LORA_LEARNING_RATE, kto_learning_rate=LORA_KTO_LEARNING_RATE
    )


async def _arm_loop(arm: str, seed: int, cycles: int, start: str, tmp: Path) -> dict[str, Any]:
    """One arm's loop with one seed, in its own database and model folder."""
    folder = tmp / f"{arm.replace('+', '-')}-{seed}"
    settings = Settings(
        storage=StorageConfig(url=f"sqlite:///{folder / 'bench.db'}"),
        model=ModelConfig(model_dir=folder / "models", base_model=start, device="cpu"),
        learning=replace(LOOP_LEARNING, finetune=_arm_config(arm, seed)),
        chat=ChatConfig(cooldown_s=0.0),  # one simulated member asks for every output
    )
    started = time.perf_counter()
    app = await App.open(settings)  # the real wiring: engine, curation, training, gate
    versions = ModelVersionRepository(app.db)
    results, runs = [], []
    try:
        results.append(await _cycle(app.chat, 0, seed))
        for cycle in range(1, cycles + 1):
            await app.admin.training.start("bench", include_ratings=True)
            info = await app.admin.training.wait()
            assert info is not None
            version = await app.db.run(versions.get, info.model_version or "")
            runs.append(_run_report(info, {} if version is None else version.metrics))
            results.append(await _cycle(app.chat, cycle, seed))
    finally:
        await app.close()
    rising = all(b["property_share"] > a["property_share"] for a, b in pairwise(results))
    return {
        "seed": seed,
        "cycles": results,
        "runs": runs,
        "property_share_rises_every_cycle": rising,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _run_report(info: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    """One retrain: the gate's verdict, the held-out losses, and what training cost."""
    return {
        "run": info.id,
        "status": info.status,
        "promoted": info.promoted,
        "gate": info.eval_after.get("gate"),
        "dataset_size": info.dataset_size,
        "error": info.error,
        "eval_loss_before": info.eval_before.get("eval_loss"),
        "eval_loss_after": info.eval_after.get("eval_loss"),
        "steps": len([e for e in info.loss_log if "loss" in e]),
        "train_method": metrics.get("train_method"),
        "train_tokens_per_s": metrics.get("train_tokens_per_s"),
        "peak_rss_mb": metrics.get("peak_rss_mb"),
        "size_on_disk_bytes": metrics.get("size_on_disk_bytes"),
    }


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean, sample standard deviation, min and max of the values that are there."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return {"n": 0, "mean": None, "stdev": None, "min": None, "max": None}
    stdev = statistics.stdev(present) if len(present) > 1 else 0.0
    return {
        "n": len(present),
        "mean": round(statistics.fmean(present), 4),
        "stdev": round(stdev, 4),
        "min": round(min(present), 4),
        "max": round(max(present), 4),
    }


def _summary(arm: str, seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """An arm over its seeds: each number's mean and spread."""
    cycles = len(seeds[0]["cycles"])
    shares = [[s["cycles"][c]["property_share"] for s in seeds] for c in range(cycles)]
    # held-out loss at cycle 0 is the start's (run 1 measured it), at cycle c run c's candidate's
    losses = [[s["runs"][0]["eval_loss_before"] if s["runs"] else None for s in seeds]] + [
        [s["runs"][c - 1]["eval_loss_after"] for s in seeds] for c in range(1, cycles)
    ]
    runs = [run for s in seeds for run in s["runs"]]
    objective, method = ARMS[arm]
    return {
        "objective": objective,
        "method": method,
        "final_property_share": spread(shares[-1]),
        "property_share_per_cycle": [spread(values) for values in shares],
        "heldout_loss_per_cycle": [spread(values) for values in losses],
        "train_tokens_per_s": spread([r["train_tokens_per_s"] for r in runs]),
        "peak_rss_mb": spread([r["peak_rss_mb"] for r in runs]),
        "size_on_disk_bytes": spread([r["size_on_disk_bytes"] for r in runs]),
        "promoted": f"{sum(bool(r['promoted']) for r in runs)}/{len(runs)}",
        "seeds": seeds,
    }
