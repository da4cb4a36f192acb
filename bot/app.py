"""The composition root: builds the long-lived objects once and passes them in.

`App.open(settings)` migrates the database, prepares the model (registered active version, or
the base model, or the offline bootstrap) and starts the generation backend.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from admin.auth import AdminGate, AdminPolicy
from admin.base import AdminService
from admin.service import LearningLoop
from bot import plugins
from bot.settings import Settings
from bot.usecases import ChatService
from model.backends.base import Backend
from model.bootstrap import BootstrapConfig, build_bootstrap
from model.config import ModelConfig
from model.versions import hub_reachable, validate_version_name, version_dir
from storage import AuditRepository, Database, ModelVersionRecord, ModelVersionRepository, upgrade

log = logging.getLogger(__name__)

BOOTSTRAP_VERSION = "bootstrap-1"
PROGRESS_EVERY_STEPS = 50

ProgressFn = Callable[[int, int, float], None]


@dataclass
class App:
    """Everything a platform or command needs, built once."""

    settings: Settings
    db: Database
    versions: ModelVersionRepository
    audit: AuditRepository
    backend: Backend
    chat: ChatService
    # None where an App is assembled without the learning loop (platform tests); platforms
    # then answer that admin commands are not available
    admin: AdminService | None = None
    gate: AdminGate | None = None

    @classmethod
    async def open(
        cls,
        settings: Settings,
        backend_name: str | None = None,
        bootstrap: BootstrapConfig | None = None,
        progress: ProgressFn | None = None,
        background: bool = False,
    ) -> App:
        """`background`: start the retrain schedule and resume interrupted training (for the
        long-running `gpt2bot run`, not one-shot commands)."""
        db = Database(settings.storage.url)
        try:
            await db.run(upgrade, db.engine)
            versions = ModelVersionRepository(db)
            active = await db.run(
                prepare_model, settings.model, versions, bootstrap or BootstrapConfig(), progress
            )
            factory = plugins.load(plugins.BACKEND_GROUP, backend_name or settings.model.backend)
            backend: Backend = factory(settings.model, active.name, active.path)
            await backend.start()
            admin = LearningLoop(
                db, settings.model, settings.learning, backend, settings.admin.retrain_cron
            )
            if background:
                await admin.start()
        except BaseException:
            db.dispose()
            raise
        return cls(
            settings=settings,
            db=db,
            versions=versions,
            audit=AuditRepository(db),
            backend=backend,
            chat=ChatService(db, backend),
            admin=admin,
            gate=AdminGate(AdminPolicy(settings.admin.user_ids, settings.admin.role), db),
        )

    async def close(self) -> None:
        if self.admin is not None:
            await self.admin.close()
        await self.backend.close()
        self.db.dispose()


def _name_for(base_model: str) -> str:
    return validate_version_name(re.sub(r"[^A-Za-z0-9._-]+", "-", base_model).strip("-.")[:64])


def _base_model_available(config: ModelConfig) -> bool:
    """True when `BASE_MODEL` can be loaded: a local folder, the local cache, or the hub."""
    if Path(config.base_model).is_dir():
        return True
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(config.base_model, local_files_only=True)
        return True
    except OSError:
        pass
    return hub_reachable(config.hub_timeout_s)


def _log_progress(step: int, total: int, loss: float, started: float) -> None:
    if step % PROGRESS_EVERY_STEPS == 0 or step == total:
        elapsed = time.perf_counter() - started
        eta = elapsed / step * (total - step)
        log.info(
            "bootstrap training %d%% (step %d/%d, loss %.3f, ETA %.0fs)",
            100 * step // total,
            step,
            total,
            loss,
            eta,
        )


def prepare_model(
    config: ModelConfig,
    versions: ModelVersionRepository,
    bootstrap: BootstrapConfig,
    progress: ProgressFn | None = None,
) -> ModelVersionRecord:
    """The version to serve: the active one, else the base model, else a new bootstrap model."""
    active = versions.active()
    if active is not None and (Path(active.path).exists() or active.base_model == active.path):
        return active
    if active is not None:
        log.warning("active model %s is missing at %s; preparing another", active.name, active.path)
    if config.base_model != "bootstrap":
        if _base_model_available(config):
            name = _name_for(config.base_model)
            if versions.get(name) is None:
                versions.add(name=name, path=config.base_model, base_model=config.base_model)
            return versions.activate(name)
        log.warning(
            "BASE_MODEL %r is not in the local cache and the model hub is unreachable: "
            "falling back to the offline bootstrap model",
            config.base_model,
        )
    folder = version_dir(config.model_dir, BOOTSTRAP_VERSION)
    metrics: dict[str, float] = {}
    if not folder.exists():
        started = time.perf_counter()
        report = build_bootstrap(
            folder,
            config=bootstrap,
            progress=progress or (lambda s, t, loss: _log_progress(s, t, loss, started)),
        )
        metrics = {"train_seconds": report.seconds, "final_train_loss": report.final_loss}
    if versions.get(BOOTSTRAP_VERSION) is None:
        versions.add(
            name=BOOTSTRAP_VERSION, path=str(folder), base_model="bootstrap", metrics=metrics
        )
    return versions.activate(BOOTSTRAP_VERSION)
