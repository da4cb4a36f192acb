"""CLI commands of the learning loop: `gpt2bot train` and the registry side of
`gpt2bot models use|rollback`. Registered by `bot.cli` in one block.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from admin.base import TrainingRunInfo
from bot.settings import Settings
from storage import Database, ModelVersionRecord, upgrade

if TYPE_CHECKING:  # torch-heavy: imported when a command runs, so `gpt2bot --help` stays quick
    from admin.service import LearningLoop

BAR_WIDTH = 30


def add_parsers(sub: Any) -> None:
    train = sub.add_parser("train", help="fine-tune on curated data now and register a version")
    train.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="FILE",
        help="add samples from a .txt or .jsonl file first",
    )
    train.add_argument(
        "--from-ratings", action="store_true", help="also train on well-rated generations"
    )
    train.add_argument("--epochs", type=int, help="passes over the data (default: TRAIN_EPOCHS)")
    train.add_argument("--json", action="store_true", help="print JSON")


def _bar(info: TrainingRunInfo) -> None:
    done = int(BAR_WIDTH * info.progress)
    eta = f" ETA {info.eta_s:.0f}s" if info.eta_s is not None else ""
    line = f"\r[{'#' * done}{'.' * (BAR_WIDTH - done)}] {info.progress:4.0%}{eta} ({info.status})"
    print(line.ljust(BAR_WIDTH + 40), end="", file=sys.stderr, flush=True)


def _open(settings: Settings) -> tuple[Database, LearningLoop]:
    from admin.service import LearningLoop

    db = Database(settings.storage.url)
    upgrade(db.engine)
    return db, LearningLoop(db, settings.model, settings.learning)


def _summary(info: TrainingRunInfo) -> dict[str, Any]:
    return {
        "run": info.id,
        "status": info.status,
        "dataset_size": info.dataset_size,
        "model_version": info.model_version,
        "promoted": info.promoted,
        "gate": info.eval_after.get("gate"),
        "before": info.eval_before,
        "after": {k: v for k, v in info.eval_after.items() if k not in ("gate", "promoted")},
        "error": info.error,
    }


def _print_evaluation(info: TrainingRunInfo) -> None:
    print(f"run {info.id}: {info.status} on {info.dataset_size} samples")
    if info.error:
        print(f"  {info.error}")
    if info.status != "succeeded":
        return
    before, after = info.eval_before, info.eval_after
    print(
        f"  held-out loss {before['eval_loss']:.4f} ({before['version']}) -> "
        f"{after['eval_loss']:.4f} ({after['version']}), perplexity "
        f"{before['perplexity']:.1f} -> {after['perplexity']:.1f}"
    )
    print(f"  {'promoted' if info.promoted else 'not promoted'}: {after.get('gate')}")
    for old, new in zip(before.get("samples", []), after.get("samples", []), strict=False):
        print(f"  {old['prompt']!r}\n    before: {old['output']!r}\n    after:  {new['output']!r}")


async def train(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import prepare_model
    from model.bootstrap import BootstrapConfig

    db, loop = _open(settings)
    try:
        await db.run(prepare_model, settings.model, loop.registry.versions, BootstrapConfig())
        for name in args.data:
            report = await loop.curate_add_file("cli", name, Path(name).read_bytes())
            print(f"{name}: {report.summary()}", file=sys.stderr)
        progress = None if args.json else _bar
        interrupted = await loop.interrupted_run()
        if interrupted is not None:
            print(f"resuming interrupted run {interrupted.id}", file=sys.stderr)
            await loop.resume(interrupted, progress)
        else:
            await loop.retrain_now(
                "cli", progress, include_ratings=args.from_ratings, epochs=args.epochs
            )
        info = await loop.wait()
    finally:
        await loop.close()
        db.dispose()
    assert info is not None
    if not args.json:
        print(file=sys.stderr)
    print(json.dumps(_summary(info), default=str)) if args.json else _print_evaluation(info)
    return 0 if info.status == "succeeded" else 1


async def models_switch(settings: Settings, action: str, version: str | None, force: bool) -> None:
    """`models use|rollback` through the registry (gate included; the database only, since a
    running bot is not this process)."""
    db, loop = _open(settings)
    try:
        if action == "use":
            if not version:
                raise ValueError("name the version: gpt2bot models use VERSION")
            record: ModelVersionRecord = await loop.model_use("cli", version, force)
        else:
            record = await loop.model_rollback("cli")
        print(f"{record.name} is now active", file=sys.stderr)
    finally:
        db.dispose()
