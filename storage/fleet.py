"""The fleet: every `gpt2bot run` process on this database, what it is and what it serves.

Each serving process renews its row (`beat`) on every follow round, so `last_seen` says whether
it is alive: a row not renewed within `LIVE_ROUNDS` of its own rounds (plus `LIVE_SLACK_S` for
a slow database or a busy machine) belongs to a process that died (`kill -9`, a lost machine);
a clean stop deletes its row (`leave`). Times are each process's own clock: keep the clocks in
sync (NTP), as for the schedule lease.

On PostgreSQL (psycopg) a change of what the fleet serves (a version activated, an experiment
started or ended) also sends `NOTIFY gpt2bot_fleet` in its transaction (`announce`), and each
serving process `listen`s on its own connection, so it follows at once instead of at its next
poll. Elsewhere (SQLite) the poll alone does it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from storage.db import Database
from storage.models import ServingProcess, as_utc, utcnow

LIVE_ROUNDS = 3  # a process that missed this many renewals in a row is taken for dead
LIVE_SLACK_S = 5.0  # ... plus this, for a slow database or a busy machine
FORGET_AFTER = timedelta(days=1)  # dead processes' rows are deleted after this
CHANNEL = "gpt2bot_fleet"  # PostgreSQL NOTIFY channel: what the fleet serves changed
LISTEN_WAKE_S = 1.0  # a listener looks at its stop flag this often


def announce(session: Session) -> None:
    """In a transaction that changes what the fleet serves: tell listening processes when it
    commits (PostgreSQL `NOTIFY`); elsewhere nothing, the processes poll."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {CHANNEL}"))


@dataclass(frozen=True)
class ProcessBeat:
    """What a serving process says of itself on each round."""

    id: str  # host:pid:random, unique per process start
    host: str
    pid: int
    platform: str  # discord|slack|web|a plugin's name
    shards: str  # DISCORD_SHARDS as set ("0,1/4"), "" for one connection or another platform
    served_version: str  # the version that serves new requests
    candidate_version: str | None  # the running A/B experiment's candidate, when resident
    problem: str | None  # why it does not serve what the database says, or None
    interval_s: float  # seconds between its rounds


@dataclass(frozen=True)
class ProcessRecord:
    id: str
    host: str
    pid: int
    platform: str
    shards: str
    served_version: str
    candidate_version: str | None
    problem: str | None
    interval_s: float
    started_at: datetime
    last_seen: datetime

    def alive_at(self, now: datetime) -> bool:
        """Whether it renewed its row recently enough to be taken as running at `now`."""
        window = timedelta(seconds=LIVE_ROUNDS * self.interval_s + LIVE_SLACK_S)
        return now - self.last_seen <= window


def _record(row: ServingProcess) -> ProcessRecord:
    return ProcessRecord(
        id=row.id,
        host=row.host,
        pid=row.pid,
        platform=row.platform,
        shards=row.shards,
        served_version=row.served_version,
        candidate_version=row.candidate_version,
        problem=row.problem,
        interval_s=row.interval_s,
        started_at=as_utc(row.started_at),
        last_seen=as_utc(row.last_seen),
    )


class ProcessRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def beat(self, beat: ProcessBeat) -> None:
        """Record `beat` as this process's row, now (created on the first beat)."""
        values = {
            "host": beat.host,
            "pid": beat.pid,
            "platform": beat.platform,
            "shards": beat.shards,
            "served_version": beat.served_version,
            "candidate_version": beat.candidate_version,
            "problem": beat.problem,
            "interval_s": beat.interval_s,
            "last_seen": utcnow(),
        }
        with self._db.session() as session:
            renewed = session.execute(
                update(ServingProcess).where(ServingProcess.id == beat.id).values(**values)
            )
            if not renewed.rowcount:  # type: ignore[attr-defined]
                session.add(ServingProcess(id=beat.id, started_at=values["last_seen"], **values))

    def live(self) -> list[ProcessRecord]:
        """The processes alive now, oldest first; dead ones' rows older than a day go."""
        now = utcnow()
        with self._db.session() as session:
            session.execute(
                delete(ServingProcess).where(ServingProcess.last_seen < now - FORGET_AFTER)
            )
            rows = session.scalars(select(ServingProcess).order_by(ServingProcess.started_at))
            records = [_record(row) for row in rows]
        return [r for r in records if r.alive_at(now)]

    def can_listen(self) -> bool:
        """Whether `listen` works here: PostgreSQL through psycopg (3)."""
        url = make_url(self._db.url)
        return url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg"

    def listen(self, on_change: Callable[[], object], stop: threading.Event) -> None:
        """Call `on_change` (from this thread) for each announced change until `stop` is set.
        Blocking, on a connection of its own; raises when the connection fails."""
        import psycopg  # the PostgreSQL driver, there when `can_listen`

        url = make_url(self._db.url).set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f"LISTEN {CHANNEL}")
            while not stop.is_set():
                for _ in connection.notifies(timeout=LISTEN_WAKE_S, stop_after=1):
                    on_change()

    def leave(self, process_id: str) -> None:
        """Delete the row of a process that stops cleanly."""
        with self._db.session() as session:
            session.execute(delete(ServingProcess).where(ServingProcess.id == process_id))
