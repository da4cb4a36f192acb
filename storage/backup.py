"""Backups of the database while the bot runs, and restores from them.

SQLite: `sqlite3.Connection.backup` (SQLite's online backup API) copies a consistent snapshot
of the live file page by page while the bot keeps reading and writing. The whole copy is one
step: a backup taken in several steps starts over whenever another connection writes between
two of them, so under steady write load it might never finish, whereas one step holds a read
transaction, which in WAL mode writers do not wait for. The copy is written beside the target
as `FILE.partial`, checked with `PRAGMA integrity_check`, switched to a single-file journal
and only then renamed to FILE, so a crash never leaves a half-written backup under its name.

PostgreSQL: `pg_dump` already takes a consistent snapshot of a live database, so we do not
reimplement it; `BackupUnsupported` says the exact commands.

Restore writes the backup into the configured database through the same API (never a plain
file copy, which would mix with a leftover `-wal` file), after keeping the current database
as `DATABASE.before-restore-TIMESTAMP`. Stop the bot first: a running bot keeps its own
view of what it wrote.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

# the tables whose row counts a backup reports (the rest are small bookkeeping tables)
REPORTED_TABLES = (
    "generations",
    "ratings",
    "conversations",
    "curated_samples",
    "model_versions",
    "training_runs",
    "admin_audit",
)
MIGRATIONS_TABLE = "alembic_version"  # present in every gpt2bot database


class BackupUnsupported(ValueError):
    """This database is not backed up by gpt2bot; the message says how to back it up."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    bytes: int
    seconds: float
    rows: dict[str, int]  # per reported table

    def summary(self) -> str:
        counts = ", ".join(f"{n:,} {table}" for table, n in self.rows.items())
        return f"{self.path}: {counts} ({self.bytes / 1e6:.1f} MB in {self.seconds:.2f} s)"


def sqlite_path(url: str) -> Path:
    """The file behind a SQLite URL; `BackupUnsupported` (with the right tool) otherwise."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        libpq = parsed.set(drivername="postgresql").render_as_string(hide_password=True)
        raise BackupUnsupported(
            "gpt2bot backup copies SQLite databases; for PostgreSQL use pg_dump, which takes "
            f"a consistent snapshot while the bot runs: pg_dump --format=custom --file FILE "
            f"'{libpq}' (put the password in ~/.pgpass or PGPASSWORD), and restore with "
            f"pg_restore --clean --if-exists --dbname '{libpq}' FILE"
        )
    if backend != "sqlite":
        raise BackupUnsupported(
            f"gpt2bot backup copies SQLite databases; back up this {backend} database with "
            "its own dump tool"
        )
    if not parsed.database or parsed.database == ":memory:":
        raise BackupUnsupported("an in-memory database cannot be backed up: it has no file")
    return Path(parsed.database).expanduser()


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}{'?mode=ro' if readonly else ''}"
    connection = sqlite3.connect(uri, uri=True, timeout=30.0)
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def _row_counts(connection: sqlite3.Connection) -> dict[str, int]:
    present = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    return {
        table: int(connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
        for table in REPORTED_TABLES
        if table in present
    }


def check_backup_file(path: Path) -> dict[str, int]:
    """Row counts of a gpt2bot SQLite database at `path`; `ValueError` if it is not one."""
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    try:
        with closing(_connect(path, readonly=True)) as connection:
            verdict = connection.execute("PRAGMA integrity_check").fetchone()[0]
            names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
            counts = _row_counts(connection)
    except sqlite3.DatabaseError as error:
        raise ValueError(f"{path} is not a SQLite database ({error})") from None
    if verdict != "ok":
        raise ValueError(f"{path} is damaged (integrity check: {verdict})")
    if MIGRATIONS_TABLE not in names:
        raise ValueError(f"{path} is a SQLite database but not a gpt2bot one")
    return counts


def backup_sqlite(url: str, out: Path) -> BackupReport:
    """Copy the live database of `url` to `out`, consistently, while others write to it."""
    source = sqlite_path(url)
    if not source.is_file():
        raise ValueError(f"there is no database at {source} yet: nothing to back up")
    if out.exists() and out.resolve() == source.resolve():
        raise ValueError(f"{out} is the live database itself; choose another file")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    started = time.perf_counter()
    try:
        with closing(_connect(source)) as live, closing(sqlite3.connect(partial)) as copy:
            live.backup(copy)  # one step: see the module docstring
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal
    except sqlite3.Error as error:
        partial.unlink(missing_ok=True)
        raise ValueError(f"the backup of {source} failed ({error}); nothing was written") from None
    try:
        rows = check_backup_file(partial)
    except ValueError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out)
    return BackupReport(out, out.stat().st_size, round(time.perf_counter() - started, 3), rows)


def restore_sqlite(
    url: str, backup: Path, force: bool = False
) -> tuple[dict[str, int], Path | None]:
    """Replace the database of `url` with `backup`; returns the restored row counts and where
    the replaced database was kept (None when there was none). Without `force`, a database
    that holds data is not replaced."""
    target = sqlite_path(url)
    rows = check_backup_file(backup)
    if target.exists() and target.resolve() == backup.resolve():
        raise ValueError(f"{backup} is the configured database itself")
    kept: Path | None = None
    if target.is_file():
        with closing(_connect(target)) as current:
            held = sum(_row_counts(current).values())
        if held and not force:
            raise ValueError(
                f"{target} already holds data ({held:,} rows); stop the bot, then add --force "
                "to replace it (the current database is kept beside it)"
            )
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        kept = target.with_name(f"{target.name}.before-restore-{stamp}")
        backup_sqlite(url, kept)
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(_connect(backup, readonly=True)) as source, closing(_connect(target)) as live:
        source.backup(live)
        live.execute("PRAGMA journal_mode=WAL")  # as the bot opens it
    return rows, kept
