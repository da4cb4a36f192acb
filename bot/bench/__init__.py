"""`gpt2bot bench generation|training|loop`: the benchmarks, one module each, behind one
subcommand. `bot.cli` registers `add_parser` and dispatches to `run`.

- `generation.py` (scenarios in `scenarios.py`; workload, baselines and ceilings in
  `model/bench/`): the engine against the usual ways of serving GPT-2.
- `model/bench/training.py`: tokens/s of the fine-tuning recipe against padded and HF `Trainer`
  baselines.
- `loop.py`: does the learning loop learn what simulated raters like? (And `ab_simulation.py`:
  how often the A/B rule promotes a better, equal or worse candidate; `--ab-only` runs just it.)
- `poisoning.py`: can colluders teach it what moderation flags (defences on, off, rules only)?

Each benchmark module imports torch and transformers at its top, so it is imported only when its
benchmark runs: `gpt2bot --help` and the other commands stay quick.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from bot.settings import Settings

__all__ = ["KINDS", "add_parser", "run"]

KINDS = ("generation", "training", "loop", "poisoning")


def add_parser(subparsers: Any) -> None:
    """The `bench` subcommand and its options, on the CLI's subparsers."""
    bench = subparsers.add_parser("bench", help="benchmarks (JSON with --json)")
    bench.add_argument("kind", choices=KINDS)
    bench.add_argument("--data", help="training bench: text file of samples (default: bundled)")
    bench.add_argument("--configs", default="tiny,124m", help="model configs (training bench)")
    bench.add_argument("--cycles", type=int, default=3, help="retrain cycles (loop, poisoning)")
    bench.add_argument("--base", help="loop, poisoning: start from this model folder")
    bench.add_argument("--quick", action="store_true", help="generation bench: a smoke run")
    bench.add_argument(
        "--ab-only", action="store_true", help="loop bench: only the A/B simulation (seconds)"
    )
    bench.add_argument(
        "--seeds", type=int, default=3, help="loop bench: runs of each arm, each its own seed"
    )
    bench.add_argument(
        "--arms",
        default="sft,sft-lora,kto,kto-lora,sft+kto",
        help="loop bench: objective and method arms (sft, sft-lora, kto, kto-lora, sft+kto)",
    )
    bench.add_argument("--device", help="generation bench: cpu, cuda, cuda:1 … (default: DEVICE)")
    bench.add_argument("--json", action="store_true", help="print JSON")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run the benchmark `args.kind` and print its report (JSON with `--json`)."""
    if args.kind == "generation":
        return _generation(settings, args)
    if args.kind == "training":
        from model.bench.training import run_training_bench

        result = run_training_bench(args.data, tuple(args.configs.split(",")))
    elif args.kind == "poisoning":
        from bot.bench.poisoning import run_poisoning_bench

        result = asyncio.run(run_poisoning_bench(args.cycles, args.base))
    elif args.ab_only:
        from bot.bench.ab_simulation import simulate_ab

        result = {"ab_simulation": simulate_ab(settings.learning.ab)}
    else:
        from bot.bench.loop import run_loop_bench

        arms = tuple(args.arms.split(","))
        result = asyncio.run(
            run_loop_bench(args.cycles, args.base, arms, settings.learning.ab, args.seeds)
        )
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


def _generation(settings: Settings, args: argparse.Namespace) -> int:
    # runs its own event loops (one per scenario), so it is never called inside asyncio.run
    from bot.bench.generation import render, run_benchmark

    def progress(message: str) -> None:
        print(f"bench: {message}…", file=sys.stderr, flush=True)

    # the device defaults to the DEVICE setting (auto: a GPU when there is one)
    device = args.device or settings.model.device
    report = run_benchmark(quick=args.quick, progress=progress, device=device)
    print(json.dumps(report) if args.json else render(report))
    return 0
