"""CLI commands for operators: `gpt2bot backup` and `gpt2bot restore`. Registered by `bot.cli`.

Neither opens the App: a backup only reads the database (the running bot applied its
migrations), and a restore must not race a model being prepared. Errors are `ValueError`
sentences, which the CLI prints as one line.
"""

from __future__ import annotations

import argparse
import json
import sys
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
