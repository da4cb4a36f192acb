"""Reports: members' 🚩 on outputs. One per member per generation; enough of them hide the
output (members then see a sentence instead) until an admin deletes it or lets it stand.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select

from storage.db import Database
from storage.errors import NotFound
from storage.models import Generation, Report


@dataclass(frozen=True)
class ReportOutcome:
    reports: int  # distinct members who reported the output
    hidden: bool  # whether the output is hidden now
    newly_hidden: bool  # this report hid it


@dataclass(frozen=True)
class ReportedRecord:
    generation_id: int
    platform: str
    server_id: str | None
    channel_id: str | None
    message_id: str | None
    output: str
    reports: int


class ReportRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, generation_id: int, reporter_id: str, hide_at: int) -> ReportOutcome:
        """Record a member's report (again: no change); hide the output at `hide_at` reports."""
        with self._db.session() as session:
            generation = session.get(Generation, generation_id)
            if generation is None:
                raise NotFound(f"generation {generation_id}")
            already = session.scalar(
                select(Report.id).where(
                    Report.generation_id == generation_id, Report.reporter_id == reporter_id
                )
            )
            if already is None:
                session.add(Report(generation_id=generation_id, reporter_id=reporter_id))
                session.flush()
            count = (
                session.scalar(
                    select(func.count(Report.id)).where(Report.generation_id == generation_id)
                )
                or 0
            )
            newly = not generation.hidden and count >= hide_at
            if newly:
                generation.hidden = True
            return ReportOutcome(count, bool(generation.hidden), newly)

    def hidden(self, platform: str, server_id: str | None, limit: int = 50) -> list[ReportedRecord]:
        """The outputs hidden by reports, in a server (or all servers with `server_id=None`)."""
        with self._db.session() as session:
            counts = (
                select(Report.generation_id, func.count(Report.id).label("n"))
                .group_by(Report.generation_id)
                .subquery()
            )
            query = (
                select(Generation, counts.c.n)
                .join(counts, counts.c.generation_id == Generation.id)
                .where(Generation.hidden.is_(True), Generation.platform == platform)
                .order_by(Generation.id.desc())
                .limit(limit)
            )
            if server_id is not None:
                query = query.where(Generation.guild_id == server_id)
            return [
                ReportedRecord(
                    g.id, g.platform, g.guild_id, g.channel_id, g.message_id, g.output, int(n)
                )
                for g, n in session.execute(query)
            ]

    def dismiss(self, platform: str, server_id: str, generation_id: int) -> None:
        """An admin lets a reported output stand: shown again, its reports cleared."""
        with self._db.session() as session:
            generation = session.get(Generation, generation_id)
            if (
                generation is None
                or generation.platform != platform
                or generation.guild_id != server_id
            ):
                raise LookupError(f"There is no generation #{generation_id} in this server.")
            generation.hidden = False
            session.execute(delete(Report).where(Report.generation_id == generation_id))
