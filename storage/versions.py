"""Model versions: the registry of trained models, in lines: the shared line (`line` None) and a
line per server that the owners gave one (`line` is its key, "discord:1234"). Each line has at
most one `active` version; a server's line serves that server only (bot/lines.py).

Every method is one transaction returning records; async callers use `Database.run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from storage.db import Database
from storage.errors import InUse, NotFound
from storage.fleet import announce
from storage.models import ModelVersion, utcnow


@dataclass(frozen=True)
class ModelVersionRecord:
    name: str
    parent: str | None
    path: str
    base_model: str
    training_run_id: int | None
    metrics: dict[str, Any]
    status: str  # candidate|active|retired
    created_at: datetime
    activated_at: datetime | None
    base_version: str | None = None  # an adapter's full base version; None: a full version
    line: str | None = None  # a server's line ("discord:1234"); None: the shared line

    @property
    def is_adapter(self) -> bool:
        return self.base_version is not None


def _version_record(row: ModelVersion) -> ModelVersionRecord:
    return ModelVersionRecord(
        name=row.name,
        parent=row.parent,
        path=row.path,
        base_model=row.base_model,
        training_run_id=row.training_run_id,
        metrics=dict(row.metrics or {}),
        status=row.status,
        created_at=row.created_at,
        activated_at=row.activated_at,
        base_version=row.base_version,
        line=row.line,
    )


def _in_line(line: str | None) -> Any:
    return ModelVersion.line.is_(None) if line is None else ModelVersion.line == line


class ModelVersionRepository:
    """Rows of the model-version registry; one version per line is `active` at a time."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        name: str,
        path: str,
        base_model: str,
        parent: str | None = None,
        metrics: dict[str, Any] | None = None,
        training_run_id: int | None = None,
        base_version: str | None = None,
        line: str | None = None,
    ) -> ModelVersionRecord:
        with self._db.session() as session:
            row = ModelVersion(
                line=line,
                name=name,
                path=path,
                base_model=base_model,
                parent=parent,
                base_version=base_version,
                metrics=metrics or {},
                training_run_id=training_run_id,
                status="candidate",
            )
            session.add(row)
            session.flush()
            return _version_record(row)

    def in_line(self, line: str | None = None) -> list[ModelVersionRecord]:
        """The versions of `line` (None: the shared line), oldest first."""
        with self._db.session() as session:
            query = select(ModelVersion).where(_in_line(line)).order_by(ModelVersion.id)
            return [_version_record(r) for r in session.scalars(query)]

    def list(self) -> list[ModelVersionRecord]:
        """Every version of every line."""
        with self._db.session() as session:
            rows = session.scalars(select(ModelVersion).order_by(ModelVersion.id))
            return [_version_record(r) for r in rows]

    def get(self, name: str) -> ModelVersionRecord | None:
        with self._db.session() as session:
            row = session.scalars(select(ModelVersion).where(ModelVersion.name == name)).first()
            return None if row is None else _version_record(row)

    def active(self, line: str | None = None) -> ModelVersionRecord | None:
        """The active version of `line` (None: the shared line)."""
        with self._db.session() as session:
            query = select(ModelVersion).where(ModelVersion.status == "active", _in_line(line))
            row = session.scalars(query).first()
            return None if row is None else _version_record(row)

    def activate(self, name: str) -> ModelVersionRecord:
        """Make `name` the active version of its line and retire the line's one before, in one
        transaction."""
        with self._db.session() as session:
            target = session.scalars(select(ModelVersion).where(ModelVersion.name == name)).first()
            if target is None:
                raise NotFound(f"model version {name}")
            query = select(ModelVersion).where(ModelVersion.status == "active")
            for row in session.scalars(query.where(_in_line(target.line))):
                if row.id != target.id:
                    row.status = "retired"
            target.status = "active"
            target.activated_at = utcnow()
            announce(session)  # every serving process follows (storage/fleet.py)
            session.flush()
            return _version_record(target)

    def retire(self, name: str) -> ModelVersionRecord:
        """Mark `name` retired (it lost an A/B experiment); the active version stays active."""
        with self._db.session() as session:
            row = session.scalars(select(ModelVersion).where(ModelVersion.name == name)).first()
            if row is None:
                raise NotFound(f"model version {name}")
            if row.status != "active":
                row.status = "retired"
            session.flush()
            return _version_record(row)

    def previous_active(self, line: str | None = None) -> ModelVersionRecord | None:
        """The most recently activated version of `line` other than its active one."""
        with self._db.session() as session:
            query = (
                select(ModelVersion)
                .where(ModelVersion.status != "active", ModelVersion.activated_at.is_not(None))
                .where(_in_line(line))
                .order_by(ModelVersion.activated_at.desc(), ModelVersion.id.desc())
            )
            row = session.scalars(query).first()
            return None if row is None else _version_record(row)

    def adapters_of(self, name: str) -> tuple[ModelVersionRecord, ...]:
        """The adapter versions whose base is `name` (they cannot load without it)."""
        with self._db.session() as session:
            query = select(ModelVersion).where(ModelVersion.base_version == name)
            return tuple(
                _version_record(r) for r in session.scalars(query.order_by(ModelVersion.id))
            )

    def remove(self, name: str) -> ModelVersionRecord:
        """Delete `name`'s row (its folder is the caller's to delete). `InUse` for the active
        version and for a base that adapter versions load over, checked in this transaction."""
        with self._db.session() as session:
            row = session.scalars(select(ModelVersion).where(ModelVersion.name == name)).first()
            if row is None:
                raise NotFound(f"model version {name}")
            if row.status == "active":
                raise InUse(f"model version {name} is active")
            query = select(ModelVersion.name).where(ModelVersion.base_version == name)
            adapters = tuple(session.scalars(query.order_by(ModelVersion.id)))
            if adapters:
                raise InUse(f"model version {name} is the base of {adapters}", adapters)
            record = _version_record(row)
            session.delete(row)
            return record

    def update_metrics(self, name: str, metrics: dict[str, Any]) -> None:
        with self._db.session() as session:
            row = session.scalars(select(ModelVersion).where(ModelVersion.name == name)).first()
            if row is None:
                raise NotFound(f"model version {name}")
            row.metrics = {**(row.metrics or {}), **metrics}
