"""Database engine and sessions.

The engine is synchronous (APScheduler's job store needs one and SQLite gains nothing from an
async driver); async callers go through `Database.run`, which moves the call to a thread so the
event loop never blocks on I/O.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from storage.connect import check_driver

SQLITE_BUSY_TIMEOUT_MS = 5000  # writers wait this long for a lock instead of failing at once
# how long a process trusts a hot record it read (a server's settings, read by every request)
# before reading it again: another process's change is followed within this
RECENT_READS_TTL_S = 5.0

P = ParamSpec("P")
T = TypeVar("T")


def check_url(url: str) -> None:
    """Refuse what SQLAlchemy cannot parse as a database URL, or cannot open for want of its
    dialect or driver (`ValueError(problem, fix)`)."""
    try:
        make_url(url)
    except ArgumentError:
        raise ValueError(
            f"{url!r} is not a database URL",
            "Use e.g. sqlite:///./data/gpt2bot.db or postgresql+psycopg://user:pass@host/db.",
        ) from None
    check_driver(url)


@dataclass(frozen=True)
class StorageConfig:
    # SQLite and PostgreSQL are what the tests cover
    url: str = field(
        default="sqlite:///./data/gpt2bot.db",
        metadata={"env": "DATABASE_URL", "check": check_url, "help": "SQLAlchemy database URL"},
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_db_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL, a busy timeout and their folder created."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = parsed.database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class RecentReads:
    """Records this process read lately, each trusted for `ttl_s`, and forgotten at once when
    this process writes them. Thread-safe and non-blocking, so the event loop may look here
    before it sends a read to a thread."""

    def __init__(self, ttl_s: float = RECENT_READS_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._records: dict[Hashable, tuple[float, Any]] = {}  # key -> (read at, record)
        self._writes = 0  # a read that started before a write may not store what it read

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            entry = self._records.get(key)
        if entry is None or time.monotonic() - entry[0] > self.ttl_s:
            return None
        return entry[1]

    def writes(self) -> int:
        """A token to take before reading from the database and give to `put`."""
        with self._lock:
            return self._writes

    def put(self, key: Hashable, record: Any, writes: int) -> None:
        """Remember `record`, read after `writes()` returned `writes`, unless a write since."""
        with self._lock:
            if self._writes == writes:
                self._records[key] = (time.monotonic(), record)

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._writes += 1
            self._records.pop(key, None)


class Database:
    """Owns the engine and hands out sessions; `run` calls blocking code off the event loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.recent = RecentReads()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self._sessions.begin() as session:
            yield session

    def ping(self) -> None:
        """Raise unless the database answers a trivial query (the readiness check)."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def dispose(self) -> None:
        self.engine.dispose()
