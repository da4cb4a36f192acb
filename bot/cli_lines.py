"""`--server PLATFORM:ID` on `gpt2bot train`, `generate`, `models` and `ab`: a server's own model
line from the command line, acting as the bot's owners (the line service audits each change
as "cli", with the scope `line` and the server key; `ab --server` is in bot/cli_ab.py).

`models enable|disable|share|unshare --server K` decide whether K has a line and whether its
data also trains the shared model; `models [list|use V|rollback] --server K` show and switch
the line's versions; `train --server K [--data F]` adds F's texts to K's line and trains it.
The commands write the database; every serving process serves a line's new version to that
server's next request (it reads a line's version at most `LINE_FOLLOW_S` old, bot/lines.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from admin.results import LineStatus
from bot.cli_run import CommandError
from bot.lines import LINE_FOLLOW_S
from bot.settings import Settings
from storage.servers import parse_server_key

LINE_ACTIONS = ("enable", "disable", "share", "unshare")  # the owners' decisions on a line
ALLOWED = {"enable": (True, None), "disable": (False, None), "share": (None, True)}


def server_arg(text: str) -> str:
    """argparse's type for `--server`: "discord:1234", refused in one sentence otherwise."""
    try:
        platform, server_id = parse_server_key(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return f"{platform}:{server_id}"


def add_server_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--server", type=server_arg, metavar="PLATFORM:ID", help=what)


async def models(settings: Settings, args: argparse.Namespace) -> int:
    """`gpt2bot models ACTION --server K`."""
    if args.action == "remove":
        raise CommandError("remove versions without --server: gpt2bot models remove VERSION")
    if args.action == "use" and not args.version:
        raise CommandError(f"name the version: gpt2bot models use VERSION --server {args.server}")
    from bot.app import App  # torch-heavy: imported when the command runs

    app = await App.open(settings, model="none")
    lines, key = app.admin.lines, args.server
    try:
        if args.action in LINE_ACTIONS:
            enabled, shares = ALLOWED.get(args.action, (None, False))
            await lines.allow("cli", key, enabled, shares)  # the service audits each change
        elif args.action == "use":
            record = await lines.use("cli", key, args.version, args.force)
        elif args.action == "rollback":
            record = await lines.rollback("cli", key)
        if args.action in ("use", "rollback"):
            print(
                f"The database now names {record.name} the active version of {key}'s line; "
                f"serving processes give it to that server's requests within {LINE_FOLLOW_S:g} s.",
                file=sys.stderr,
            )
        status = await lines.status(key)
    finally:
        await app.close()
    print(json.dumps(status.to_dict(), default=str)) if args.json else print(render(status))
    return 0


def render(status: LineStatus) -> str:
    if not status.enabled:
        head = f"{status.key} has no model line of its own: it is served the shared version."
    else:
        active = status.active
        served = "the shared version" if active is None else active.name
        shares = "also train" if status.shares else "stay out of"
        head = (
            f"{status.key} has its own model line: it is served {served}; its texts and "
            f"ratings {shares} the shared model."
        )
    rows = [
        f"{'*' if v.status == 'active' else ' '} {v.name:<24} {v.status:<9} "
        f"adapter of {v.base_version or '-'}"
        for v in status.versions
    ]
    return "\n".join([head, *rows])


async def train(app: Any, args: argparse.Namespace, progress: Any) -> None:
    """`gpt2bot train --server K [--data F ...]`: K's texts from F, then K's line trained."""
    from pathlib import Path

    for name in args.data:
        content = Path(name).read_bytes()
        report = await app.admin.lines.add_file("cli", args.server, name, content)
        print(f"{name}: {report.summary()} (for {args.server}'s line)", file=sys.stderr)
    await app.admin.lines.retrain(
        "cli", args.server, progress, include_ratings=args.from_ratings, epochs=args.epochs
    )
