"""Persistence: SQLAlchemy models, migrations and repositories returning dataclasses."""

from storage.db import Database, StorageConfig
from storage.migrate import upgrade
from storage.records import (
    GenerationRecord,
    ModelVersionRecord,
    NewGeneration,
    RatingRecord,
    VersionRatingStats,
)
from storage.repository import (
    AuditRepository,
    GenerationRepository,
    ModelVersionRepository,
    NotFound,
)

__all__ = [
    "AuditRepository",
    "Database",
    "GenerationRecord",
    "GenerationRepository",
    "ModelVersionRecord",
    "ModelVersionRepository",
    "NewGeneration",
    "NotFound",
    "RatingRecord",
    "StorageConfig",
    "VersionRatingStats",
    "upgrade",
]
