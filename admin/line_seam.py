"""The model-line seam (`LineService`) and its stand-in for services built without lines
(`NoLines`); beside `admin/base.py`, which re-exports both (split off for length)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from admin.errors import Invalid
from admin.results import (
    BlindPair,
    CurationReport,
    ExperimentStatus,
    LineStatus,
    ProgressCallback,
)
from storage import (
    CuratedSampleRecord,
    ModelVersionRecord,
    PairWinRate,
    ReviewItemRecord,
    ServerSettingsRecord,
    TrainingRunRecord,
)


class LineService(Protocol):
    """Model lines: a server's own versions (admin/lines.py). `key` is "platform:server id";
    every method but `status` and `every` refuses (`Invalid`) a server without a line."""

    async def status(self, key: str) -> LineStatus: ...
    async def every(self) -> list[LineStatus]: ...
    async def allow(
        self, actor: str, key: str, enabled: bool | None = None, shares: bool | None = None
    ) -> ServerSettingsRecord:
        """Owners only: enable or disable a server's line; let its data train the shared one."""
        ...

    async def add(self, actor: str, key: str, texts: list[str]) -> CurationReport: ...
    async def add_file(
        self, actor: str, key: str, filename: str, content: bytes
    ) -> CurationReport: ...
    async def queue(self, key: str, limit: int = 20) -> list[CuratedSampleRecord]:
        """The line's own rating-derived samples waiting for review."""
        ...

    async def review(
        self, actor: str, key: str, sample_id: int, approve: bool
    ) -> CuratedSampleRecord: ...
    async def retrain(
        self,
        actor: str,
        key: str,
        progress: ProgressCallback | None = None,
        *,
        include_ratings: bool = True,
        epochs: int | None = None,
    ) -> TrainingRunRecord: ...
    async def use(
        self, actor: str, key: str, version: str, force: bool = False
    ) -> ModelVersionRecord: ...
    async def rollback(self, actor: str, key: str) -> ModelVersionRecord: ...
    async def schedule(self, actor: str, key: str, cron: str | None) -> list[datetime]:
        """Set (None: clear) the line's retrain schedule; its next run times. A scheduled run
        trains only when the line's training data has something its last run did not."""
        ...

    async def ab_start(
        self, actor: str, key: str, version: str, share: float | None = None
    ) -> ExperimentStatus:
        """An A/B experiment inside the line: its active version against `version` (one of
        its own), over the server's members only."""
        ...

    async def ab_status(self, key: str) -> ExperimentStatus | None: ...
    async def ab_stop(self, actor: str, key: str) -> ExperimentStatus: ...
    async def review_next(
        self,
        actor: str,
        key: str,
        version_a: str | None = None,
        version_b: str | None = None,
        same_pair_as: int | None = None,
    ) -> BlindPair:
        """A blind pair of two of the line's versions (default: its active one and its newest
        other) on one of its server's recent prompts or a fixed one."""
        ...

    async def review_vote(
        self, actor: str, key: str, item_id: int, choice: str
    ) -> ReviewItemRecord:
        """A verdict on one of the line's pairs (`Unknown` for another line's or the shared)."""
        ...

    async def review_stats(self, key: str) -> list[PairWinRate]:
        """The win rates of the line's pairs only."""
        ...


NO_LINES = "Model lines are not available in this bot."


class NoLines:
    """Services built without model lines (test doubles): every server gets the shared model."""

    async def status(self, key: str) -> LineStatus:
        return LineStatus(key, False, False, ())

    async def every(self) -> list[LineStatus]:
        return []

    async def allow(
        self, actor: str, key: str, enabled: bool | None = None, shares: bool | None = None
    ) -> ServerSettingsRecord:
        raise Invalid(NO_LINES)

    async def add(self, actor: str, key: str, texts: list[str]) -> CurationReport:
        raise Invalid(NO_LINES)

    async def add_file(self, actor: str, key: str, filename: str, content: bytes) -> CurationReport:
        raise Invalid(NO_LINES)

    async def queue(self, key: str, limit: int = 20) -> list[CuratedSampleRecord]:
        raise Invalid(NO_LINES)

    async def review(
        self, actor: str, key: str, sample_id: int, approve: bool
    ) -> CuratedSampleRecord:
        raise Invalid(NO_LINES)

    async def retrain(
        self,
        actor: str,
        key: str,
        progress: ProgressCallback | None = None,
        *,
        include_ratings: bool = True,
        epochs: int | None = None,
    ) -> TrainingRunRecord:
        raise Invalid(NO_LINES)

    async def use(
        self, actor: str, key: str, version: str, force: bool = False
    ) -> ModelVersionRecord:
        raise Invalid(NO_LINES)

    async def rollback(self, actor: str, key: str) -> ModelVersionRecord:
        raise Invalid(NO_LINES)

    async def schedule(self, actor: str, key: str, cron: str | None) -> list[datetime]:
        raise Invalid(NO_LINES)

    async def ab_start(
        self, actor: str, key: str, version: str, share: float | None = None
    ) -> ExperimentStatus:
        raise Invalid(NO_LINES)

    async def ab_status(self, key: str) -> ExperimentStatus | None:
        return None

    async def ab_stop(self, actor: str, key: str) -> ExperimentStatus:
        raise Invalid(NO_LINES)

    async def review_next(
        self,
        actor: str,
        key: str,
        version_a: str | None = None,
        version_b: str | None = None,
        same_pair_as: int | None = None,
    ) -> BlindPair:
        raise Invalid(NO_LINES)

    async def review_vote(
        self, actor: str, key: str, item_id: int, choice: str
    ) -> ReviewItemRecord:
        raise Invalid(NO_LINES)

    async def review_stats(self, key: str) -> list[PairWinRate]:
        raise Invalid(NO_LINES)
