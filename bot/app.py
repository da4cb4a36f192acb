"""The composition root: builds the long-lived objects once and passes them in.

`App.open(settings)` migrates the database, prepares the model (registered active version, or
the base model, or the offline bootstrap), starts the generation backend and builds the admin
services and their gate. Every command, platform, benchmark and test builds through it; tests
pass doubles (`backend=ScriptedBackend()`, `admin=scripted_admin(...)`), never `None`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from admin.auth import AdminGate, AdminPolicy
from admin.base import AdminServices
from admin.curation import Curation
from admin.experiments import Experiments
from admin.fleet import Fleet
from admin.follow import Follower, ProcessIdentity
from admin.lines import Lines
from admin.moderation import Moderator
from admin.registry import ProgressFn, Registry, prepare_model
from admin.reports import Reports
from admin.review import Reviews
from admin.servers import Servers
from admin.training import Training
from bot import plugins
from bot.chat import ChatService
from bot.metrics import FollowCollector, Metrics
from bot.mydata import MyData
from bot.settings import Settings, SettingsError
from model.backends.base import Backend
from model.backends.idle import IdleBackend
from model.config import check_writable
from model.threads import to_own_thread
from storage import Database, DatabaseUnreachable, ModelVersionRepository, reach, upgrade

if TYPE_CHECKING:
    from model.bootstrap import BootstrapConfig

log = logging.getLogger(__name__)

# what a command needs of the model: "serve" (generate), "prepare" (an active version to
# fine-tune, nothing loaded), "none" (the database alone: export, models list/use)
ModelNeed = Literal["serve", "prepare", "none"]


@dataclass
class App:
    """Everything a platform or command needs, built once."""

    settings: Settings
    db: Database
    backend: Backend
    chat: ChatService
    admin: AdminServices
    gate: AdminGate
    mydata: MyData
    metrics: Metrics
    follower: Follower  # started for `gpt2bot run` (a `process`): follows the database

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        backend: Backend | None = None,
        admin: AdminServices | None = None,
        moderator: Moderator | None = None,
        model: ModelNeed = "serve",
        bootstrap: BootstrapConfig | None = None,
        progress: ProgressFn | None = None,
        background: bool = False,
        process: ProcessIdentity | None = None,
    ) -> App:
        """`backend`/`admin`/`moderator`: use these instead of building them (tests pass
        fakes; the moderator is otherwise the `MODERATOR` plugin).
        `background`: start the retrain schedule and resume interrupted training (for the
        long-running `gpt2bot run`, not one-shot commands).
        A serving App (`model="serve"`) loads a running A/B experiment's candidate again.
        `process`: this is a long-running serving process (`gpt2bot run`): it follows the
        database's active version and experiment and records itself in the fleet."""
        db = Database(settings.storage.url)
        try:
            await _reach(db)
            await db.run(upgrade, db.engine)
            if backend is None:
                backend = await _backend(settings, db, model, bootstrap, progress)
            await backend.start()
            if moderator is None:
                factory = plugins.load(plugins.MODERATOR_GROUP, settings.moderation.plugin)
                moderator = factory(settings.moderation)
            admin = admin or _admin_services(settings, db, backend, moderator, model)
            if model == "serve":
                await admin.experiments.resume()
            if background:
                await admin.training.start_background()
            follower = Follower(
                db,
                admin.registry,
                admin.experiments,
                backend,
                settings.fleet,
                process or ProcessIdentity("none"),
            )
            if isinstance(admin.fleet, Fleet):
                admin.fleet.local = follower  # what it shows of this process is up to date
            if process is not None and model == "serve":
                await follower.start()
        except BaseException:
            db.dispose()
            raise
        role_ids = tuple(str(role) for role in settings.admin.role_ids)
        gate = AdminGate(AdminPolicy(settings.admin.user_ids, role_ids), db)
        metrics = Metrics(db, backend)
        metrics.registry.register(FollowCollector(follower))
        chat = ChatService(
            db,
            backend,
            settings.chat,
            metrics,
            moderator=moderator,
            experiments=admin.experiments,
        )
        return cls(settings, db, backend, chat, admin, gate, MyData(db), metrics, follower)

    async def close(self) -> None:
        await self.follower.close()
        await self.chat.arms.wait()  # an A/B decision under way finishes
        await self.admin.close()
        await self.backend.close()
        self.db.dispose()


async def _reach(db: Database) -> None:
    """The first connection: an operator's mistake that only shows now (a server that is not
    there, wrong credentials) is a settings error naming DATABASE_URL, like any other."""
    try:
        await db.run(reach, db)
    except DatabaseUnreachable as error:
        raise SettingsError("DATABASE_URL", *error.args) from None


def _quiet_libraries() -> None:
    """Our own log lines report progress; the libraries' tqdm bars only clutter the logs."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


async def _backend(
    settings: Settings,
    db: Database,
    model: ModelNeed,
    bootstrap: BootstrapConfig | None,
    progress: ProgressFn | None,
) -> Backend:
    """The configured backend plugin on the prepared model, or an idle one."""
    if model == "none":
        return IdleBackend()
    try:  # before a minute is spent on the model: where it is saved must take new files
        await asyncio.to_thread(check_writable, settings.model.model_dir)
    except ValueError as error:
        raise SettingsError("MODEL_DIR", *error.args) from None
    _quiet_libraries()
    from model.bootstrap import BootstrapConfig  # torch-heavy: only when a model is prepared

    versions = ModelVersionRepository(db)
    # its own thread: building the bootstrap model there leaves no OpenMP pool behind to slow
    # the engine's decode steps (model/threads.py)
    active = await to_own_thread(
        prepare_model, settings.model, versions, bootstrap or BootstrapConfig(), progress
    )
    if model == "prepare":
        return IdleBackend(active.name)
    factory = plugins.load(plugins.BACKEND_GROUP, settings.model.backend)
    backend: Backend = factory(settings.model, active.name, active.path)
    return backend


def _admin_services(
    settings: Settings, db: Database, backend: Backend, moderator: Moderator, model: ModelNeed
) -> AdminServices:
    curation = Curation(db, settings.learning, moderator)
    registry = Registry(
        db,
        settings.learning.promote_tolerance,
        backend,
        settings.learning.promote_flagged_tolerance,
        settings.model.model_dir,
    )
    training = Training(
        db, settings.model, settings.learning, curation, registry, settings.admin.retrain_cron
    )
    experiments = Experiments(
        db,
        registry,
        backend,
        settings.learning.ab,
        serves=model == "serve",
        min_account_days=settings.learning.rating_min_account_days,
    )
    reviews = Reviews(db, backend, candidate=experiments.candidate)  # A/B's arm is kept loaded
    servers = Servers(db, moderator)
    fleet = Fleet(db, settings.fleet)
    lines = Lines(db, curation, training, registry, experiments, reviews)  # servers' own
    return AdminServices(
        curation, training, registry, Reports(db), servers, experiments, reviews, fleet, lines
    )
