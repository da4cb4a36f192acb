"""Persistence: SQLAlchemy models, migrations and repositories returning dataclasses."""

from storage.db import Database, StorageConfig
from storage.learning import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    CuratedSampleRecord,
    CuratedSampleRepository,
    RunStatus,
    TrainingRunRecord,
    TrainingRunRepository,
)
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
    "ACTIVE_STATUSES",
    "FINISHED_STATUSES",
    "AuditRepository",
    "CuratedSampleRecord",
    "CuratedSampleRepository",
    "Database",
    "GenerationRecord",
    "GenerationRepository",
    "ModelVersionRecord",
    "ModelVersionRepository",
    "NewGeneration",
    "NotFound",
    "RatingRecord",
    "RunStatus",
    "StorageConfig",
    "TrainingRunRecord",
    "TrainingRunRepository",
    "VersionRatingStats",
    "upgrade",
]
