"""`gpt2bot bench loop`: does the learning loop learn what raters like?

Simulated raters prefer outputs that mention a topic word. Each cycle generates a batch through
the real chat use-case, the raters rate it through the real rating path, the learning loop
retrains on the well-rated outputs (ratings -> curated samples), the gate promotes, the engine
hot-swaps, and the next batch is measured. Cycle 0 is the model before any retraining.

The training objectives (`TRAIN_OBJECTIVE`) run side by side in one run: the same starting
model, seeds and simulated raters, each objective with its own database and model folder.

Everything runs in a temporary folder: its own databases, the offline bootstrap model (built
once, shared by every objective as its starting version). The report ends with the A/B
simulation ("ab_simulation", `bot/bench/ab_simulation.py`): the decision rule that compares
versions on live ratings, at the configured thresholds.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
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
from model.bootstrap import BootstrapConfig, build_bootstrap
from model.config import OBJECTIVES, FinetuneConfig, ModelConfig
from storage import StorageConfig

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


async def _cycle(chat: ChatService, cycle: int) -> dict[str, Any]:
    """Generate a batch, let the raters rate it; the share liked and the mean rating."""
    origin = Origin(platform="bench", user_id="bench")
    scores, liked = [], 0
    requests = [(prompt, 100 * r + i) for r in range(ROUNDS) for i, prompt in enumerate(PROMPTS)]
    for prompt, seed in requests:  # the same seeds every cycle: only the model changes
        params = {
            "samples": SAMPLES_PER_PROMPT,
            "max_new_tokens": 30,
            "temperature": 1.0,
            "seed": seed,
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
    objectives: tuple[str, ...] = OBJECTIVES,
    ab: ABConfig | None = None,
) -> dict[str, Any]:
    """Cycle 0 plus `cycles` retrain cycles for each objective, from `base` (a model folder)
    or a fresh bootstrap model (`cycles` and `runs` are the default objective's); then the A/B
    simulation at the thresholds of `ab`."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        start = base or str(Path(tmp) / "bootstrap")
        if base is None:
            await asyncio.to_thread(_build_start, Path(start))
        prepare_s = time.perf_counter() - started
        results = {}
        for objective in objectives:
            log.info("loop bench: objective %s", objective)
            results[objective] = await _objective_loop(objective, cycles, start, Path(tmp))
    default = FinetuneConfig().objective
    main = results.get(default) or next(iter(results.values()))
    return {
        "topic_word": TOPIC_WORD,
        "base": base or "bootstrap (built for this run)",
        "prepare_seconds": round(prepare_s, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "default_objective": default,
        "cycles": main["cycles"],
        "runs": main["runs"],
        "property_share_rises_every_cycle": main["property_share_rises_every_cycle"],
        "objectives": results,
        "finetune": asdict(LOOP_FINETUNE),
        "ab_simulation": simulate_ab(ab or ABConfig()),
    }


def _build_start(folder: Path) -> None:
    """The bootstrap model every objective starts from, on one CPU thread: a small model on a
    busy 2-core machine steps far faster on one thread than on two (see `model.finetune`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        build_bootstrap(folder, config=BootstrapConfig())
    finally:
        torch.set_num_threads(threads)


async def _objective_loop(objective: str, cycles: int, start: str, tmp: Path) -> dict[str, Any]:
    """One objective's loop in its own database and model folder."""
    folder = tmp / objective.replace("+", "-")
    settings = Settings(
        storage=StorageConfig(url=f"sqlite:///{folder / 'bench.db'}"),
        model=ModelConfig(model_dir=folder / "models", base_model=start, device="cpu"),
        learning=replace(LOOP_LEARNING, finetune=replace(LOOP_FINETUNE, objective=objective)),
        chat=ChatConfig(cooldown_s=0.0),  # one simulated member asks for every output
    )
    started = time.perf_counter()
    app = await App.open(settings)  # the real wiring: engine, curation, training, gate
    results, runs = [], []
    try:
        results.append(await _cycle(app.chat, 0))
        for cycle in range(1, cycles + 1):
            await app.admin.training.start("bench", include_ratings=True)
            info = await app.admin.training.wait()
            assert info is not None
            runs.append(
                {
                    "run": info.id,
                    "status": info.status,
                    "promoted": info.promoted,
                    "gate": info.eval_after.get("gate"),
                    "dataset_size": info.dataset_size,
                    "error": info.error,
                    "eval_loss_before": info.eval_before.get("eval_loss"),
                    "eval_loss_after": info.eval_after.get("eval_loss"),
                    "steps": len([e for e in info.loss_log if "loss" in e]),
                }
            )
            results.append(await _cycle(app.chat, cycle))
    finally:
        await app.close()
    rising = all(b["property_share"] > a["property_share"] for a, b in pairwise(results))
    return {
        "cycles": results,
        "runs": runs,
        "property_share_rises_every_cycle": rising,
        "seconds": round(time.perf_counter() - started, 1),
    }
