"""Per-server settings: what a server's admins chose for their own server.

A server (a Discord guild, a Slack workspace) that never changed anything has no row; its
record then carries the defaults (every channel allowed, no caps, ratings feed training).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from storage.db import Database
from storage.models import Generation, ServerSettings, utcnow

# the columns an admin may change (the others are bookkeeping)
EDITABLE = (
    "allowed_channels",
    "admin_role_ids",
    "cooldown_s",
    "defaults",
    "max_new_tokens_cap",
    "samples_cap",
    "ratings_train",
    "blocklist",
    "templates",
)


@dataclass(frozen=True)
class ServerSettingsRecord:
    platform: str
    server_id: str
    allowed_channels: tuple[str, ...] = ()  # empty: every channel
    admin_role_ids: tuple[str, ...] = ()  # roles whose holders are this server's admins
    cooldown_s: float | None = None  # None: the platform's default
    defaults: dict[str, Any] = field(default_factory=dict)  # sampling defaults for /generate
    max_new_tokens_cap: int | None = None
    samples_cap: int | None = None
    ratings_train: bool = True  # this server's ratings may feed training
    blocklist: tuple[str, ...] = ()  # moderation terms this server adds to the bot's
    # prompt templates around a member's text: "" for the whole server, else a channel id
    templates: dict[str, str] = field(default_factory=dict)
    updated_by: str | None = None
    updated_at: datetime | None = None

    def template_for(self, channel_id: str | None) -> tuple[str | None, str]:
        """The template that applies in a channel and where it was set ("channel", "server"),
        or (None, "")."""
        if channel_id is not None and channel_id in self.templates:
            return self.templates[channel_id], "channel"
        if "" in self.templates:
            return self.templates[""], "server"
        return None, ""


def _record(row: ServerSettings) -> ServerSettingsRecord:
    return ServerSettingsRecord(
        platform=row.platform,
        server_id=row.server_id,
        allowed_channels=tuple(row.allowed_channels or ()),
        admin_role_ids=tuple(row.admin_role_ids or ()),
        cooldown_s=row.cooldown_s,
        defaults=dict(row.defaults or {}),
        max_new_tokens_cap=row.max_new_tokens_cap,
        samples_cap=row.samples_cap,
        ratings_train=row.ratings_train,
        blocklist=tuple(row.blocklist or ()),
        templates={str(k): str(v) for k, v in (row.templates or {}).items()},
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


class ServerSettingsRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, platform: str, server_id: str) -> ServerSettingsRecord:
        """The server's settings, or the defaults when it never changed any."""
        writes = self._db.recent.writes()
        with self._db.session() as session:
            row = self._row(session, platform, server_id)
            record = ServerSettingsRecord(platform, server_id) if row is None else _record(row)
        self._db.recent.put(("server settings", platform, server_id), record, writes)
        return record

    def recent(self, platform: str, server_id: str) -> ServerSettingsRecord | None:
        """The settings `get` read lately in this process (`RecentReads`), without blocking;
        None when they must be read again."""
        found: ServerSettingsRecord | None = self._db.recent.get(
            ("server settings", platform, server_id)
        )
        return found

    def update(
        self, platform: str, server_id: str, updated_by: str, **changes: Any
    ) -> ServerSettingsRecord:
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise ValueError(f"not a server setting: {', '.join(sorted(unknown))}")
        with self._db.session() as session:
            row = self._row(session, platform, server_id)
            if row is None:
                row = ServerSettings(
                    platform=platform,
                    server_id=server_id,
                    allowed_channels=[],
                    admin_role_ids=[],
                    defaults={},
                    ratings_train=True,
                )
                session.add(row)
            for name, value in changes.items():
                setattr(row, name, list(value) if isinstance(value, tuple) else value)
            row.updated_by, row.updated_at = updated_by, utcnow()
            session.flush()
            record = _record(row)
        self._db.recent.forget(("server settings", platform, server_id))
        return record

    def known(self, limit: int = 200) -> list[ServerSettingsRecord]:
        """Every server with settings or generations, with its settings (for the dashboard)."""
        with self._db.session() as session:
            rows = {
                (r.platform, r.server_id): _record(r)
                for r in session.scalars(select(ServerSettings))
            }
            used = select(Generation.platform, Generation.guild_id).where(
                Generation.guild_id.is_not(None)
            )
            for platform, server_id in session.execute(used.distinct().limit(limit)):
                key = (str(platform), str(server_id))
                rows.setdefault(key, ServerSettingsRecord(*key))
            return [rows[key] for key in sorted(rows)][:limit]

    @staticmethod
    def _row(session: Any, platform: str, server_id: str) -> ServerSettings | None:
        query = select(ServerSettings).where(
            ServerSettings.platform == platform, ServerSettings.server_id == server_id
        )
        return session.scalars(query).first()
