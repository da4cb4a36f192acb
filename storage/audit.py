"""Audit: who tried which admin action, from where, and whether it was allowed.

Like every repository, each method is one transaction; async callers use `Database.run`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from storage.db import Database
from storage.models import AuditEntry


class AuditRepository:
    """The admin audit log: every admin attempt, allowed or not."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        actor: str,
        platform: str,
        action: str,
        allowed: bool,
        detail: dict[str, Any],
        scope: str | None = None,
        server_id: str | None = None,
    ) -> None:
        with self._db.session() as session:
            session.add(
                AuditEntry(
                    actor=actor,
                    platform=platform,
                    action=action,
                    allowed=allowed,
                    detail=detail,
                    scope=scope,
                    server_id=server_id,
                )
            )

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._db.session() as session:
            query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
            return [
                {
                    "actor": r.actor,
                    "platform": r.platform,
                    "action": r.action,
                    "allowed": r.allowed,
                    "detail": dict(r.detail or {}),
                    "scope": r.scope,
                    "server_id": r.server_id,
                    "created_at": r.created_at,
                }
                for r in session.scalars(query)
            ]
