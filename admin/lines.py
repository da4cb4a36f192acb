"""Model lines: a server's own versions, trained on its own texts and ratings, served to it only.

The bot's owners decide which servers have a line (`allow`: off by default) and whether a
line's data may also train the shared model (`line_shares`, off by default). Within an enabled
line, the server's admins retrain, promote and roll back (`admin.auth.Scope.LINE`); a line's
versions are LoRA adapters over the shared base, registered with the line's key
("discord:1234"), and the chat service serves a line's active version to that server's requests
only (bot/lines.py). Everything here is checked against the database, so every process agrees.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from admin.base import ExperimentService, ProgressCallback, ReviewService
from admin.curation import Curation
from admin.errors import Invalid, Unknown, no_version
from admin.registry import Registry
from admin.results import BlindPair, CurationReport, ExperimentStatus, LineStatus
from admin.training import Training
from storage import (
    AuditRepository,
    CuratedSampleRecord,
    Database,
    ModelVersionRecord,
    ModelVersionRepository,
    NotFound,
    PairWinRate,
    ReviewItemRecord,
    ServerSettingsRecord,
    ServerSettingsRepository,
    TrainingRunRecord,
)
from storage.servers import parse_server_key

AUDIT_PLATFORM = "line"  # the audit log's platform for what the service changed


def no_line(key: str) -> Invalid:
    return Invalid(
        f"{key} has no model line of its own: the bot's owners can give it one "
        f"(`line enable` there, or `gpt2bot models enable --server {key}`)."
    )


class Lines:
    """The `LineService`: owners enable lines; a line's admins train and switch its versions."""

    def __init__(
        self,
        db: Database,
        curation: Curation,
        training: Training,
        registry: Registry,
        experiments: ExperimentService,
        reviews: ReviewService,
    ) -> None:
        self.db, self.curation, self.training, self.registry = db, curation, training, registry
        self.experiments, self.reviews = experiments, reviews
        self.settings = ServerSettingsRepository(db)
        self.versions = ModelVersionRepository(db)
        self.audit = AuditRepository(db)

    async def status(self, key: str) -> LineStatus:
        platform, server_id = _parse(key)
        settings = await self.db.run(self.settings.get, platform, server_id)
        versions = await self.db.run(self.versions.in_line, settings.key)
        scheduler = self.training.scheduler  # kept by `gpt2bot run` only: else not known here
        runs = tuple(scheduler.next_runs(settings.key)) if scheduler.running else None
        return LineStatus(
            settings.key, settings.own_line, settings.line_shares, tuple(versions), runs
        )

    async def every(self) -> list[LineStatus]:
        """Every enabled line, and every line that has versions (the dashboard's table)."""
        enabled = {s.key for s in await self.db.run(self.settings.lines)}
        trained = {v.line for v in await self.db.run(self.versions.list) if v.line is not None}
        return [await self.status(key) for key in sorted(enabled | trained)]

    async def allow(
        self, actor: str, key: str, enabled: bool | None = None, shares: bool | None = None
    ) -> ServerSettingsRecord:
        """Owners only (the caller authorizes and audits): give a server its own line or take
        it back (its versions stay; the shared version serves it again, and the line's running
        experiment, which no member would reach, is stopped), and let its data train the
        shared model too, or not."""
        platform, server_id = _parse(key)
        changes = {"own_line": enabled, "line_shares": shares}
        given = {name: value for name, value in changes.items() if value is not None}
        record = await self.db.run(self.settings.update, platform, server_id, actor, **given)
        verb = "share" if enabled is None else "enable" if enabled else "disable"
        await self._audit(actor, f"line {verb}", record.key, given)
        latest = await self.experiments.status(record.key) if enabled is False else None
        if latest is not None and latest.running:
            await self.experiments.stop(actor, line=record.key)
        return record

    async def add(self, actor: str, key: str, texts: list[str]) -> CurationReport:
        """Curated texts for the line only (cleaned and screened like the shared ones)."""
        key = (await self._enabled(key)).key
        report = await self.curation.add(actor, texts, key)
        await self._audit(actor, "line add", key, {"added": report.added})
        return report

    async def add_file(self, actor: str, key: str, filename: str, content: bytes) -> CurationReport:
        key = (await self._enabled(key)).key
        report = await self.curation.add_file(actor, filename, content, key)
        await self._audit(actor, "line add", key, {"file": filename, "added": report.added})
        return report

    async def queue(self, key: str, limit: int = 20) -> list[CuratedSampleRecord]:
        """The line's own rating-derived samples waiting for review (synced first)."""
        key = (await self._enabled(key)).key
        await self.curation.sync_ratings()
        return await self.db.run(self.curation.samples.pending, limit, key)

    async def review(
        self, actor: str, key: str, sample_id: int, approve: bool
    ) -> CuratedSampleRecord:
        """Approve or reject one of the line's own queued samples (`Unknown` otherwise)."""
        key = (await self._enabled(key)).key
        try:
            done = await self.db.run(self.curation.samples.review, sample_id, actor, approve, key)
        except NotFound:
            raise Unknown(f"No curated sample {sample_id} of {key} waits for review.") from None
        await self._audit(actor, "line queue", key, {"sample": sample_id, "approve": approve})
        return done

    async def retrain(
        self,
        actor: str,
        key: str,
        progress: ProgressCallback | None = None,
        *,
        include_ratings: bool = True,
        epochs: int | None = None,
    ) -> TrainingRunRecord:
        """Train an adapter on the line's texts and ratings only: from its active version
        (extending the line) or, for its first, from the shared active version."""
        key = (await self._enabled(key)).key
        run = await self.training.start(
            actor, progress, include_ratings=include_ratings, epochs=epochs, line=key
        )
        await self._audit(actor, "line retrain", key, {"run": run.id})
        return run

    async def use(
        self, actor: str, key: str, version: str, force: bool = False
    ) -> ModelVersionRecord:
        """Make one of the line's versions the one its server is served (the gate compares
        it with the line's active version, or the shared one)."""
        key = (await self._enabled(key)).key
        record = await self.db.run(self.versions.get, version)
        if record is None:
            raise no_version(version)
        if record.line != key:
            raise Invalid(f"{version} is not a version of {key}'s line (see `line show`).")
        promoted, _ = await self.registry.promote(version, force, actor)
        await self._audit(actor, "line use", key, {"version": version, "force": force})
        return promoted

    async def rollback(self, actor: str, key: str) -> ModelVersionRecord:
        key = (await self._enabled(key)).key
        record = await self.registry.rollback(actor, key)
        await self._audit(actor, "line rollback", key, {"version": record.name})
        return record

    async def schedule(self, actor: str, key: str, cron: str | None) -> list[datetime]:
        """The line's own retrain schedule (None: none); its next run times."""
        key = (await self._enabled(key)).key
        upcoming = await self.training.schedule(actor, cron, key)
        await self._audit(actor, "line schedule", key, {"cron": cron})
        return upcoming

    async def ab_start(
        self, actor: str, key: str, version: str, share: float | None = None
    ) -> ExperimentStatus:
        """The line's active version against `version` (one of the line's), for the server's
        members only (the experiment service audits it with the line)."""
        key = (await self._enabled(key)).key
        return await self.experiments.start(actor, version, share, line=key)

    async def ab_status(self, key: str) -> ExperimentStatus | None:
        platform, server_id = _parse(key)
        return await self.experiments.status(line=f"{platform}:{server_id}")

    async def ab_stop(self, actor: str, key: str) -> ExperimentStatus:
        key = (await self._enabled(key)).key
        return await self.experiments.stop(actor, line=key)

    async def review_next(
        self,
        actor: str,
        key: str,
        version_a: str | None = None,
        version_b: str | None = None,
        same_pair_as: int | None = None,
    ) -> BlindPair:
        """A blind pair of the line's versions on a prompt of its server (or a fixed one)."""
        key = (await self._enabled(key)).key
        return await self.reviews.next_item(
            actor, version_a, version_b, same_pair_as=same_pair_as, line=key
        )

    async def review_vote(
        self, actor: str, key: str, item_id: int, choice: str
    ) -> ReviewItemRecord:
        """A verdict on one of the line's pairs: it counts for the line's versions only."""
        key = (await self._enabled(key)).key
        item = await self.reviews.record(actor, item_id, choice, key)
        await self._audit(actor, "line review", key, {"item": item_id, "verdict": item.verdict})
        return item

    async def review_stats(self, key: str) -> list[PairWinRate]:
        key = (await self._enabled(key)).key
        return await self.reviews.win_rates(key)

    async def _enabled(self, key: str) -> ServerSettingsRecord:
        platform, server_id = _parse(key)
        settings = await self.db.run(self.settings.get, platform, server_id)
        if not settings.own_line:
            raise no_line(settings.key)
        return settings

    async def _audit(self, actor: str, action: str, key: str, detail: dict[str, Any]) -> None:
        record = self.audit.record
        await self.db.run(record, actor, AUDIT_PLATFORM, action, True, detail, "line", key)


def _parse(key: str) -> tuple[str, str]:
    try:
        return parse_server_key(key)
    except ValueError as error:
        raise Invalid(f"{error}.") from None
