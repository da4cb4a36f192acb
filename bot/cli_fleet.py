"""`gpt2bot status [--json]`: the database's choice and every live `gpt2bot run` process on it;
and what `models use|rollback` and `ab start|stop` say after a change (`--wait`: until every
live process serves it). Registered by `bot.cli`.

No model is loaded here: the command reads the database, which each serving process renews
with what it serves (admin/follow.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from admin.base import AdminServices
from admin.fleet_view import FleetView, ProcessStatus
from bot.settings import Settings

WAIT_TIMEOUT_S = 120.0  # --wait gives up after this (loading a big model takes a while)


def add_parsers(sub: Any) -> None:
    status = sub.add_parser(
        "status", help="the live gpt2bot processes on this database and what each serves"
    )
    status.add_argument("--json", action="store_true", help="print JSON")


def add_wait_options(parser: argparse.ArgumentParser) -> None:
    """`--wait` and `--timeout` of the commands that change what the fleet serves."""
    parser.add_argument(
        "--wait",
        action="store_true",
        help="return once every live gpt2bot process serves the change (exit status 1 if "
        "one does not within --timeout; the answer says which and why)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=WAIT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long --wait waits (default {WAIT_TIMEOUT_S:g})",
    )


async def followed(admin: AdminServices, args: argparse.Namespace, said: str) -> int:
    """Print `said` (what the database now says) and how the fleet follows it; with
    `--wait`, after every live process serves it or the timeout. The exit status."""
    view = await (admin.fleet.wait(args.timeout) if args.wait else admin.fleet.view())
    print(f"{said} {view.summary()}", file=sys.stderr)
    if not args.wait or not view.behind:
        return 0
    for process in view.behind:
        why = process.problem or f"still serving {_serves(process)}"
        print(f"  not followed: {_name(process)}: {why}", file=sys.stderr)
    return 1


async def status(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import App  # torch-heavy: imported when the command runs

    app = await App.open(settings, model="none")
    try:
        view = await app.admin.fleet.view()
    finally:
        await app.close()
    if args.json:
        print(json.dumps(view.to_dict(), ensure_ascii=False))
    else:
        print(render(view))
    return 0


def render(view: FleetView, now: datetime | None = None) -> str:
    """The database's choice, then one line per live process."""
    now = now or datetime.now(UTC)
    head = f"database: active {view.active or '(none yet)'}"
    if view.candidate is not None:
        head += f", A/B candidate {view.candidate}"
    lines = [head, view.summary()]
    for p in view.processes:
        state = "ok" if view.serves_it(p) else ("LAGGING" if p.lagging else "following")
        seen = max(0.0, (now - p.last_seen).total_seconds())
        line = (
            f"  {_name(p):<28} {p.platform:<8} shards {p.shards or '-':<6} "
            f"serves {_serves(p):<28} seen {seen:.0f} s ago  {state}"
        )
        lines.append(line + (f": {p.problem}" if p.problem else ""))
    return "\n".join(lines)


def _name(process: ProcessStatus) -> str:
    return f"{process.host}:{process.pid}"


def _serves(process: ProcessStatus) -> str:
    if process.candidate_version is None:
        return process.served_version
    return f"{process.served_version} (+A/B {process.candidate_version})"
