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
# the columns only the bot's owners may change (admin.lines): what a server's own model line is
OWNER_ONLY = ("own_line", "line_shares")
KEY_SEPARATOR = ":"


def server_key(platform: str, server_id: str) -> str:
    """The key of a server's model line and of the texts it contributes: "discord:1234"."""
    return f"{platform}{KEY_SEPARATOR}{server_id}"


def parse_server_key(key: str) -> tuple[str, str]:
    """(platform, server id) of "discord:1234"; `ValueError` saying the form otherwise."""
    platform, _, server_id = key.strip().partition(KEY_SEPARATOR)
    if not platform or not server_id or not platform.isidentifier():
        raise ValueError(f"{key!r} is not a server: write PLATFORM:ID, e.g. discord:1234")
    return platform, server_id


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
    own_line: bool = False  # owners let it have a model line of its own (admin.lines)
    line_shares: bool = False  # owners let its line's data also train the shared model
    blocklist: tuple[str, ...] = ()  # moderation terms this server adds to the bot's
    # prompt templates around a member's text: "" for the whole server, else a channel id
    templates: dict[str, str] = field(default_factory=dict)
    updated_by: str | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> str:
        return server_key(self.platform, self.server_id)

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
        own_line=bool(row.own_line),
        line_shares=bool(row.line_shares),
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
        unknown = set(changes) - set(EDITABLE) - set(OWNER_ONLY)  # owners: admin.lines checks
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
                    own_line=False,
                    line_shares=False,
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

    def lines(self) -> list[ServerSettingsRecord]:
        """The servers the owners gave a model line of their own."""
        with self._db.session() as session:
            query = select(ServerSettings).where(ServerSettings.own_line.is_(True))
            return [_record(r) for r in session.scalars(query.order_by(ServerSettings.id))]

    @staticmethod
    def _row(session: Any, platform: str, server_id: str) -> ServerSettings | None:
        query = select(ServerSettings).where(
            ServerSettings.platform == platform, ServerSettings.server_id == server_id
        )
        return session.scalars(query).first()
