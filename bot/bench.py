"""`gpt2bot bench generation [--json] [--quick] [--device D]`: runs the benchmark, prints its
report. The device defaults to the DEVICE setting (auto: a GPU when there is one)."""

from __future__ import annotations

import argparse
import json
import sys

from bot.settings import Settings


def bench_command(settings: Settings, args: argparse.Namespace) -> int:
    from model.bench_generation import render, run_benchmark  # torch-heavy: import on use

    def progress(message: str) -> None:
        print(f"bench: {message}…", file=sys.stderr, flush=True)

    device = args.device or settings.model.device
    report = run_benchmark(quick=args.quick, progress=progress, device=device)
    print(json.dumps(report) if args.json else render(report))
    return 0
