"""`gpt2bot bench generation [--json] [--quick]`: runs the benchmark and prints its report."""

from __future__ import annotations

import argparse
import json
import sys

from bot.settings import Settings


def bench_command(settings: Settings, args: argparse.Namespace) -> int:
    from model.bench_generation import render, run_benchmark  # torch-heavy: import on use

    def progress(message: str) -> None:
        print(f"bench: {message}…", file=sys.stderr, flush=True)

    report = run_benchmark(quick=args.quick, progress=progress)
    print(json.dumps(report) if args.json else render(report))
    return 0
