"""Fixtures of the learning-loop tests: a tiny model, a real SQLite database, and the real
admin services (curation, training, registry, reports) built on them."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import torch

from admin.base import AdminServices
from admin.config import FleetConfig, LearningConfig
from admin.curation import Curation
from admin.experiments import Experiments
from admin.fleet import Fleet
from admin.lines import Lines
from admin.moderation.fake import FakeModerator
from admin.registry import Registry
from admin.reports import Reports
from admin.review import Reviews
from admin.servers import Servers
from admin.training import Training
from model.backends.base import Backend
from model.backends.fake import ScriptedBackend
from model.bootstrap import BootstrapConfig, build_bootstrap, bundled_corpus
from model.config import ModelConfig
from model.finetune import FinetuneConfig
from storage import Database, ModelVersionRepository, upgrade

TINY = BootstrapConfig(
    vocab_size=300, n_layer=2, n_head=2, n_embd=32, n_positions=128, block_size=32, steps=20
)
TINY_FINETUNE = FinetuneConfig(
    epochs=2,
    learning_rate=3e-3,
    block_size=32,
    batch_size=4,
    eval_every=4,
    checkpoint_every=2,
    sample_max_new_tokens=6,
    device="cpu",
)
# the simple rating rule these tests were written for; tests/admin/test_safe_curation.py
# covers the defaults (distinct raters, Wilson bound, daily cap, review queue)
LEARNING = LearningConfig(
    finetune=TINY_FINETUNE,
    rating_min_score=2,
    rating_min_raters=2,
    rating_min_lower_bound=0.0,
    rating_daily_cap=0,
    auto_approve=True,
)
DOMAIN = [f"Robot number {i} likes to paint the blue fence in the garden." for i in range(24)]


def build_services(db: Database, model_dir: Path, backend: Backend) -> AdminServices:
    """The admin services as the composition root (`bot.app.App.open`) wires them."""
    curation = Curation(db, LEARNING, FakeModerator())
    registry = Registry(db, LEARNING.promote_tolerance, backend)
    model = ModelConfig(model_dir=model_dir, device="cpu")
    training = Training(db, model, LEARNING, curation, registry)
    experiments = Experiments(db, registry, backend, LEARNING.ab, serves=True)
    reviews = Reviews(db, backend, candidate=experiments.candidate)
    servers = Servers(db)
    fleet = Fleet(db, FleetConfig())
    lines = Lines(db, curation, training, registry, experiments, reviews)
    return AdminServices(
        curation, training, registry, Reports(db), servers, experiments, reviews, fleet, lines
    )


@pytest.fixture
def domain() -> list[str]:
    """Training texts of a narrow domain the tiny model learns within a few steps."""
    return list(DOMAIN)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small GPT-2 built once per session (copy it before changing it)."""
    folder = tmp_path_factory.mktemp("tiny") / "tiny-1"
    torch.set_num_threads(1)  # tiny models: threads only wait on each other (see model.finetune)
    build_bootstrap(folder, lines=bundled_corpus()[:60], config=TINY)
    return folder


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'bot.db'}")
    upgrade(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def model_dir(tmp_path: Path, tiny_model_dir: Path) -> Path:
    models = tmp_path / "models"
    shutil.copytree(tiny_model_dir, models / "tiny-1")
    return models


@pytest.fixture
def versions(db: Database, model_dir: Path) -> ModelVersionRepository:
    repo = ModelVersionRepository(db)
    repo.add("tiny-1", str(model_dir / "tiny-1"), "bootstrap")
    repo.activate("tiny-1")
    return repo


@pytest.fixture
async def services(
    db: Database, model_dir: Path, versions: ModelVersionRepository
) -> AsyncIterator[AdminServices]:
    """The real services over a backend that serves nothing real (swaps are recorded)."""
    built = build_services(db, model_dir, ScriptedBackend(model_version="tiny-1"))
    yield built
    await built.close()


@pytest.fixture
def curation(services: AdminServices) -> Curation:
    assert isinstance(services.curation, Curation)
    return services.curation


@pytest.fixture
def training(services: AdminServices) -> Training:
    assert isinstance(services.training, Training)
    return services.training
