"""CLI commands of the learning loop: `gpt2bot train`. Registered by `bot.cli`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bot import cli_lines
from bot.cli_lines import add_server_option
from bot.settings import Settings
from storage import RunStatus, TrainingRunRecord

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
    add_server_option(train, "train that server's own model line on its own data only")
    review = sub.add_parser("review", help="rating-derived samples waiting for review")
    review.add_argument("--approve", type=int, action="append", default=[], metavar="ID")
    review.add_argument("--reject", type=int, action="append", default=[], metavar="ID")
    review.add_argument("--json", action="store_true", help="print JSON")


def _bar(info: TrainingRunRecord) -> None:
    done = int(BAR_WIDTH * info.progress)
    eta = f" ETA {info.eta_s:.0f}s" if info.eta_s is not None else ""
    line = f"\r[{'#' * done}{'.' * (BAR_WIDTH - done)}] {info.progress:4.0%}{eta} ({info.status})"
    print(line.ljust(BAR_WIDTH + 40), end="", file=sys.stderr, flush=True)


def _summary(info: TrainingRunRecord) -> dict[str, Any]:
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


def _print_evaluation(info: TrainingRunRecord) -> None:
    print(f"run {info.id}: {info.status} on {info.dataset_size} samples")
    if info.error:
        print(f"  {info.error}")
    if info.status != RunStatus.SUCCEEDED:
        return
    before, after = info.eval_before, info.eval_after
    print(
        f"  held-out loss {before['eval_loss']:.4f} ({before['version']}) -> "
        f"{after['eval_loss']:.4f} ({after['version']}), perplexity "
        f"{before['perplexity']:.1f} -> {after['perplexity']:.1f}"
    )
    print(f"  {_method_line(after)}")
    print(f"  {'promoted' if info.promoted else 'not promoted'}: {after.get('gate')}")
    for old, new in zip(before.get("samples", []), after.get("samples", []), strict=False):
        print(f"  {old['prompt']!r}\n    before: {old['output']!r}\n    after:  {new['output']!r}")


def _method_line(after: dict[str, Any]) -> str:
    """`trained as a LoRA adapter (rank 16) over gpt2, 2.4 MB on disk` or `... full model ...`."""
    size = after.get("size_on_disk_bytes")
    on_disk = "" if size is None else f", {size / 1e6:.1f} MB on disk"
    if after.get("train_method") == "lora":
        rank, base = after.get("lora_rank"), after.get("base_version")
        return f"trained as a LoRA adapter (rank {rank}) over {base}{on_disk}"
    return f"trained as a full model{on_disk}"


async def train(settings: Settings, args: argparse.Namespace) -> int:
    for name in args.data:  # a missing file is told before the model is prepared
        if not Path(name).is_file():
            raise FileNotFoundError(f"no such data file: {name}")
    from bot.app import App  # torch-heavy: imported when the command runs

    # an active version to fine-tune (prepared if need be); no model is loaded here
    app = await App.open(settings, model="prepare")
    try:
        if args.server is not None:  # a server's own line (bot/cli_lines.py)
            await cli_lines.train(app, args, None if args.json else _bar)
        for name in [] if args.server else args.data:
            report = await app.admin.curation.add_file("cli", name, Path(name).read_bytes())
            print(f"{name}: {report.summary()}", file=sys.stderr)
        if args.server is None:  # an interrupted run is resumed instead (the log says so)
            await app.admin.training.start(
                "cli",
                None if args.json else _bar,
                include_ratings=args.from_ratings,
                epochs=args.epochs,
            )
        info = await app.admin.training.wait()
    finally:
        await app.close()
    assert info is not None
    if not args.json:
        print(file=sys.stderr)
    print(json.dumps(_summary(info), default=str)) if args.json else _print_evaluation(info)
    return 0 if info.status == RunStatus.SUCCEEDED else 1


async def review(settings: Settings, args: argparse.Namespace) -> int:
    """List the review queue, or approve/reject samples by id (audited as the operator)."""
    from bot.app import App

    app = await App.open(settings, model="none")
    try:
        done = []
        for sample_id, approve in [(i, True) for i in args.approve] + [
            (i, False) for i in args.reject
        ]:
            record = await app.admin.curation.review("cli", sample_id, approve)
            detail = {"sample_id": sample_id, "approve": approve}
            await app.db.run(app.gate.audit.record, "cli", "cli", "review", True, detail, "global")
            done.append({"id": record.id, "status": record.status})
        queue = [] if done else await app.admin.curation.pending(50)
    finally:
        await app.close()
    if args.json:
        rows = done or [{"id": s.id, "text": s.text, "why": s.why} for s in queue]
        print(json.dumps(rows))
    for row in [] if args.json else done:
        print(f"sample {row['id']}: {row['status']}")
    for sample in [] if args.json else queue:
        why = sample.why or {}
        print(f"{sample.id}\t+{why.get('up')}/-{why.get('down')}\t{sample.text[:100]}")
    if not (args.json or done or queue):
        print("Nothing waits for review.")
    return 0
