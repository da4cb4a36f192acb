"""Which version serves a request: its server's own model line (the member's arm of the line's
A/B experiment, else the line's active version), else the member's arm of the shared
experiment, else the shared active version.

A server's line serves only while the owners keep it enabled (`own_line`) and it has an active
version (admin/lines.py). Every process decides from the database: a server's settings as the
chat service reads them anyway, and each line's active version read again after
`LINE_FOLLOW_S`, so a promotion or rollback made anywhere (another shard, the CLI) serves here
within that bound. The line's adapter is attached on the request's way in (milliseconds; the
engine unloads the least recently used ones, `ENGINE_MAX_ADAPTERS`). When a line cannot be
served (a backend that keeps one version, a missing folder) the shared version serves, and the
stored generation's `model_version` says so: chat never fails for a line. A line's experiment
splits only its server's members; until its candidate is resident here, the line's active
version serves the candidate's members (counted for the control arm, as the shared A/B does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from admin.results import Assignment
from bot.arms import Arms
from model.backends.base import Backend, ServesSeveralVersions
from storage import Database, ModelVersionRecord, ModelVersionRepository, ServerSettingsRepository
from storage.servers import parse_server_key, server_key

log = logging.getLogger(__name__)

LINE_FOLLOW_S = 2.0  # how stale a process's view of a line's active version may be


class Place(Protocol):
    """Where a request came from (`bot.chat.Origin`)."""

    @property
    def platform(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def guild_id(self) -> str | None: ...
    @property
    def serves_as(self) -> str | None:
        """A server key whose line serves it (the CLI's `--server`)."""
        ...


class LineServing:
    """The chat service's choice of version for each request."""

    def __init__(self, db: Database, backend: Backend) -> None:
        self._db, self.backend = db, backend
        self._servers = ServerSettingsRepository(db)
        self._versions = ModelVersionRepository(db)
        self._seen: dict[str, tuple[float, ModelVersionRecord | None]] = {}  # key -> read at
        self._loading = asyncio.Lock()

    async def choose(self, place: Place, arms: Arms) -> tuple[str | None, Assignment | None]:
        """(the version the request names, the member's A/B arm): a line's version (or its
        experiment's arm), else the shared arm's version, else (None, None): the active
        version serves."""
        key = place.serves_as
        if key is None and place.guild_id is not None:
            key = server_key(place.platform, place.guild_id)
        version = None if key is None else await self.version_for(key)
        if version is not None:
            assert key is not None
            arm = await arms.of(place.platform, place.user_id, key)
            if arm is not None and self._resident(arm.version):
                return arm.version, arm
            return version, arm  # the arm the generation records is the version that served
        arm = await arms.of(place.platform, place.user_id)
        return (arm.version if arm else None), arm

    def _resident(self, version: str) -> bool:
        backend = self.backend
        return isinstance(backend, ServesSeveralVersions) and version in backend.resident_versions

    async def version_for(self, key: str) -> str | None:
        """The version `key`'s line serves now, attached to the backend; None: the shared one."""
        try:
            record = await self._active(key)
            if record is None:
                return None
            return record.name if await self._attach(record) else None
        except Exception:
            log.exception("could not serve %s's model line; the shared version serves", key)
            return None

    async def _active(self, key: str) -> ModelVersionRecord | None:
        platform, server_id = parse_server_key(key)
        settings = self._servers.recent(platform, server_id)
        if settings is None:
            settings = await self._db.run(self._servers.get, platform, server_id)
        if not settings.own_line:
            return None
        read_at, record = self._seen.get(key, (0.0, None))
        if time.monotonic() - read_at > LINE_FOLLOW_S:
            record = await self._db.run(self._versions.active, key)
            self._seen[key] = (time.monotonic(), record)
        return record

    async def _attach(self, record: ModelVersionRecord) -> bool:
        if not isinstance(self.backend, ServesSeveralVersions):
            log.warning("this backend serves one version: %s's line cannot be served", record.line)
            return False
        if record.name in self.backend.resident_versions:
            return True
        async with self._loading:
            await self.backend.load_version(record.name, record.path)
        return record.name in self.backend.resident_versions
