"""Leases in the database: of several bot processes sharing it, the one holding a lease does
that lease's work (the retrain schedule) until the lease expires.

`acquire` is one compare-and-set: it takes or renews the lease only when it is free, expired
or already ours, so two processes never both succeed (an `UPDATE ... WHERE` on an existing
row; for a new row the primary key turns the second insert away). Expiry is by the
database's clock as each process reads it: keep the clocks in sync (NTP), and the time to
live well above the renewal interval.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import Lease, as_utc, utcnow


class LeaseRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew `name` for `holder` for `ttl_s` seconds; False if another holds it."""
        now = utcnow()
        until = now + timedelta(seconds=ttl_s)
        with self._db.session() as session:
            taken = session.execute(
                update(Lease)
                .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at < now))
                .values(holder=holder, expires_at=until)
            )
            if taken.rowcount:  # type: ignore[attr-defined]
                return True
            if session.get(Lease, name) is not None:
                return False
        try:
            with self._db.session() as session:
                session.add(Lease(name=name, holder=holder, expires_at=until))
        except IntegrityError:  # another process created it first
            return False
        return True

    def release(self, name: str, holder: str) -> None:
        """Give `name` up at once (only if `holder` has it), so another can take it now."""
        with self._db.session() as session:
            session.execute(
                update(Lease)
                .where(Lease.name == name, Lease.holder == holder)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )

    def holder(self, name: str) -> str | None:
        """Who holds `name` now (None when nobody does)."""
        with self._db.session() as session:
            row = session.scalars(select(Lease).where(Lease.name == name)).first()
            if row is None or as_utc(row.expires_at) < utcnow():
                return None
            return row.holder
