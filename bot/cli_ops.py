"""CLI commands for operators: `gpt2bot backup`, `gpt2bot restore` and `gpt2bot health`.
Registered by `bot.cli`.

None opens the App: a backup only reads the database (the running bot applied its
migrations), a restore must not race a model being prepared, and `health` asks the running
bot over HTTP (the container health check). Errors are `ValueError` sentences, which the CLI
prints as one line.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bot.settings import Settings
from storage import Database, upgrade
from storage.backup import backup_sqlite, restore_sqlite


def add_parsers(sub: Any) -> None:
    backup = sub.add_parser(
        "backup", help="copy the database to a file while the bot runs (SQLite)"
    )
    backup.add_argument("--out", required=True, metavar="FILE", help="the backup file to write")
    backup.add_argument("--json", action="store_true", help="print JSON")
    restore = sub.add_parser("restore", help="replace the database with a backup (bot stopped)")
    restore.add_argument("file", metavar="FILE", help="a file written by `gpt2bot backup`")
    restore.add_argument(
        "--force", action="store_true", help="replace a database that holds data (it is kept)"
    )
    health = sub.add_parser(
        "health", help="ask the running bot whether it is ready: exit status 0 if so, else 1"
    )
    health.add_argument(
        "--url",
        help="default: http://127.0.0.1:HEALTH_PORT/readyz, or port 8080 (the web server) "
        "when HEALTH_PORT is unset",
    )


def backup(settings: Settings, args: argparse.Namespace) -> int:
    report = backup_sqlite(settings.storage.url, Path(args.out))
    if args.json:
        print(json.dumps({**asdict(report), "path": str(report.path)}))
    else:
        print(f"backed up {report.summary()}", file=sys.stderr)
    return 0


def restore(settings: Settings, args: argparse.Namespace) -> int:
    rows, kept = restore_sqlite(settings.storage.url, Path(args.file), force=args.force)
    db = Database(settings.storage.url)
    try:
        upgrade(db.engine)  # a backup from an older release comes up to date
    finally:
        db.dispose()
    counts = ", ".join(f"{n:,} {table}" for table, n in rows.items())
    if kept is not None:
        print(f"the database it replaced is kept at {kept}", file=sys.stderr)
    print(f"restored {counts} from {args.file}", file=sys.stderr)
    return 0


HEALTH_TIMEOUT_S = 5.0  # a bot that takes longer to answer is not healthy


def readyz_url(settings: Settings) -> str:
    host = settings.health.host
    if host in ("0.0.0.0", "::", ""):  # listening everywhere: ask on this machine
        host = "127.0.0.1"
    port = settings.health.port or 8080
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/readyz"


def health(settings: Settings, args: argparse.Namespace) -> int:
    url = args.url or readyz_url(settings)
    try:
        with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:  # 503: up, not ready; the body says why
        status, body = error.code, error.read()
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        print(f"not ready: nothing answers at {url} ({reason})", file=sys.stderr)
        return 1
    try:
        checks = json.loads(body).get("checks", {})
        summary = ", ".join(f"{name} {state}" for name, state in checks.items())
    except ValueError:
        summary = body.decode(errors="replace").strip()
    print(f"{'ready' if status == 200 else f'not ready ({status})'}: {summary}")
    return 0 if status == 200 else 1
