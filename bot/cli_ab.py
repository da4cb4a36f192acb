"""`gpt2bot ab start VERSION [--share S] | status [--json] | stop [--server PLATFORM:ID]`: A/B
experiments from the command line. Registered by `bot.cli`. With `--server`, the experiment of
that server's own model line (admin/lines.py): its active version against another of its
versions, over that server's members only.

The command only writes the database (audited as the operator, "cli"); no model is loaded
here. Every running `gpt2bot run` follows a new or stopped experiment within
`FOLLOW_INTERVAL_S` and loads (or unloads) the candidate beside the active version; one
started later loads it at start-up. `start` and `stop` say how many live processes follow,
and with `--wait` return once all do. The answer (text, and `--json` with its `review` key)
puts the owners' blind-review verdicts on the same two versions next to the result.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from admin.ab_report import ABReport, report_of
from admin.base import AdminServices
from admin.results import ArmStatus, ExperimentStatus
from bot.cli_fleet import add_wait_options, followed
from bot.cli_lines import add_server_option
from bot.cli_run import CommandError
from bot.platforms.ab_text import review_line
from bot.settings import Settings

ACTIONS = ("start", "status", "stop")


def add_parsers(sub: Any) -> None:
    ab = sub.add_parser(
        "ab", help="A/B experiments: the active version against a candidate, on live ratings"
    )
    ab.add_argument("action", nargs="?", choices=ACTIONS, default="status")
    ab.add_argument("version", nargs="?", help="start: the candidate (see `models list`)")
    ab.add_argument(
        "--share", type=float, help="start: the candidate's share of members (default: AB_SHARE)"
    )
    ab.add_argument("--json", action="store_true", help="print JSON")
    add_wait_options(ab)
    add_server_option(ab, "inside that server's own model line, over its members only")


async def _act(admin: AdminServices, args: argparse.Namespace) -> ExperimentStatus | None:
    """Start, stop or read the experiment of the shared line, or of `--server`'s line."""
    key = args.server
    if key is not None:  # the line service checks the line is enabled and audits it
        if args.action == "start":
            return await admin.lines.ab_start("cli", key, args.version, args.share)
        if args.action == "stop":
            return await admin.lines.ab_stop("cli", key)
        return await admin.lines.ab_status(key)
    if args.action == "start":
        return await admin.experiments.start("cli", args.version, args.share)
    if args.action == "stop":
        return await admin.experiments.stop("cli")
    return await admin.experiments.status()


async def ab(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "start" and not args.version:
        raise CommandError("name the candidate: gpt2bot ab start VERSION [--share S]")
    from bot.app import App  # torch-heavy: imported when the command runs

    app = await App.open(settings, model="none")
    code = 0
    try:
        status = await _act(app.admin, args)
        report = None if status is None else await report_of(status, app.admin.reviews)
        if status is not None and args.action != "status":
            verb = "runs" if status.running else "has ended"
            said = f"In the database, experiment #{status.id} now {verb}."
            if args.server is None:
                code = await followed(app.admin, args, said)
            else:  # serving processes read a line's experiment at their next A/B refresh
                follows = "Serving processes follow it within AB_REFRESH_SECONDS."
                print(f"{said} {follows}", file=sys.stderr)
    finally:
        await app.close()
    if args.json:
        print(json.dumps(None if report is None else report.to_dict(), ensure_ascii=False))
        return code
    if report is None:
        where = "" if args.server is None else f" --server {args.server}"
        print(f"No experiment has run yet: `gpt2bot ab start VERSION{where}` starts one.")
        return 0
    print(render(report))
    return code


def _arm_line(arm: ArmStatus) -> str:
    low, high = arm.interval
    liked = "no ratings yet" if arm.up_share is None else f"👍 {arm.up_share:.0%}"
    return (
        f"  {arm.arm:<9} {arm.version:<24} {arm.share:>4.0%} of members  "
        f"{arm.generations} generations  {arm.ratings} ratings  {liked} "
        f"(95 % interval {low:.2f}-{high:.2f})"
    )


def render(report: ABReport) -> str:
    """An experiment as a few lines of text, and the blind review of its pair."""
    status = report.status
    started = status.started_at.strftime("%Y-%m-%d %H:%M")
    line = "" if status.line is None else f" in {status.line}'s line"
    head = f"experiment #{status.id}{line}: {status.status}, started {started} UTC"
    head += f" by {status.started_by}"
    if status.ended_at is not None:
        head += f", ended {status.ended_at:%Y-%m-%d %H:%M} UTC by {status.ended_by}"
    return "\n".join(
        [
            head,
            _arm_line(status.control),
            _arm_line(status.candidate),
            f"  P(candidate better) = {status.probability:.3f}; "
            f"decision: {status.decision} ({status.reason})",
            "  "
            + review_line(report.review, hint=" (the dashboard's Blind review page shows one)"),
        ]
    )
