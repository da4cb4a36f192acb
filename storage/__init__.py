"""Persistence: SQLAlchemy models, migrations, and one module per entity holding its records
and its repository (generations, versions, curation, training, experiments, reviews, audit).

Import from here (`from storage import GenerationRepository`), not from the submodules.
"""

from storage.audit import AuditRepository
from storage.browse import RATING_FILTERS, GenerationBrowser, GenerationFilter
from storage.connect import DatabaseUnreachable, reach
from storage.curation import CuratedSampleRecord, CuratedSampleRepository
from storage.db import Database, StorageConfig
from storage.errors import InUse, NotFound
from storage.experiments import ArmCounts, ExperimentRecord, ExperimentRepository, ExperimentRunning
from storage.fleet import ProcessBeat, ProcessRecord, ProcessRepository
from storage.generations import (
    GenerationRecord,
    GenerationRepository,
    NewGeneration,
    RatingRecord,
    VersionRatingStats,
    iter_generations,
)
from storage.leases import LeaseRepository
from storage.members import DeletionReport, MemberDataRepository
from storage.migrate import current_revision, downgrade, head_revision, upgrade
from storage.models import as_utc
from storage.rating_rule import RatingRow, RatingRule, wilson_lower_bound
from storage.reports import ReportedRecord, ReportOutcome, ReportRepository
from storage.reviews import (
    NewReviewItem,
    PairWinRate,
    RecentPrompt,
    ReviewItemRecord,
    ReviewRepository,
)
from storage.servers import ServerSettingsRecord, ServerSettingsRepository
from storage.training import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    RunStatus,
    TrainingRunRecord,
    TrainingRunRepository,
    TrainingRunSummary,
)
from storage.versions import ModelVersionRecord, ModelVersionRepository

__all__ = [
    "ACTIVE_STATUSES",
    "FINISHED_STATUSES",
    "RATING_FILTERS",
    "ArmCounts",
    "AuditRepository",
    "CuratedSampleRecord",
    "CuratedSampleRepository",
    "Database",
    "DatabaseUnreachable",
    "DeletionReport",
    "ExperimentRecord",
    "ExperimentRepository",
    "ExperimentRunning",
    "GenerationBrowser",
    "GenerationFilter",
    "GenerationRecord",
    "GenerationRepository",
    "InUse",
    "LeaseRepository",
    "MemberDataRepository",
    "ModelVersionRecord",
    "ModelVersionRepository",
    "NewGeneration",
    "NewReviewItem",
    "NotFound",
    "PairWinRate",
    "ProcessBeat",
    "ProcessRecord",
    "ProcessRepository",
    "RatingRecord",
    "RatingRow",
    "RatingRule",
    "RecentPrompt",
    "ReportOutcome",
    "ReportRepository",
    "ReportedRecord",
    "ReviewItemRecord",
    "ReviewRepository",
    "RunStatus",
    "ServerSettingsRecord",
    "ServerSettingsRepository",
    "StorageConfig",
    "TrainingRunRecord",
    "TrainingRunRepository",
    "TrainingRunSummary",
    "VersionRatingStats",
    "as_utc",
    "current_revision",
    "downgrade",
    "head_revision",
    "iter_generations",
    "reach",
    "upgrade",
    "wilson_lower_bound",
]
