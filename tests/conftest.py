"""Shared fixtures: a tiny trained GPT-2 (built once per test session), real SQLite files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.settings import Settings
from model.bootstrap import BootstrapConfig, build_bootstrap
from storage import Database, upgrade

TINY_CORPUS = [
    "A language model predicts the next token from the tokens before it.",
    "Fine-tuning adapts a pretrained model to a smaller dataset of your own text.",
    "The transformer uses attention to weigh every earlier token in the context.",
    "Training data shapes what a model writes, so curate it with care.",
    "Sampling with a lower temperature makes the output more predictable.",
    "A chatbot can learn from the ratings its users give to its answers.",
] * 4

TINY_BOOTSTRAP = BootstrapConfig(
    vocab_size=300,
    n_layer=2,
    n_head=2,
    n_embd=32,
    block_size=32,
    batch_size=8,
    steps=40,
    warmup_steps=5,
    learning_rate=5e-3,
)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small trained GPT-2 version folder, built once (a couple of seconds)."""
    folder = tmp_path_factory.mktemp("models") / "tiny-1"
    build_bootstrap(folder, TINY_CORPUS, TINY_BOOTSTRAP)
    return folder


@pytest.fixture
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model that a test may modify."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "tiny-copy"))


@pytest.fixture
def db(tmp_path: Path):
    database = Database(f"sqlite:///{tmp_path / 'test.db'}")
    upgrade(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for an isolated install in tmp_path (no .env, offline bootstrap model)."""
    return Settings.from_env(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'gpt2bot.db'}",
            "MODEL_DIR": str(tmp_path / "models"),
            "BASE_MODEL": "bootstrap",
            "DEVICE": "cpu",
            "COOLDOWN_SECONDS": "0",  # tests that want a cooldown set one
        },
        dotenv_path=None,
    )


def register_active(settings: Settings, model_path: Path, name: str = "tiny-1") -> None:
    """Make `model_path` the active version of the install described by `settings`."""
    from storage import ModelVersionRepository

    database = Database(settings.storage.url)
    try:
        upgrade(database.engine)
        versions = ModelVersionRepository(database)
        versions.add(name=name, path=str(model_path), base_model="bootstrap")
        versions.activate(name)
    finally:
        database.dispose()


@pytest.fixture
async def app(settings: Settings, tiny_model_dir: Path):
    """A running App on a tmp SQLite database, serving the tiny model."""
    from bot.app import App

    register_active(settings, tiny_model_dir)
    application = await App.open(settings)
    yield application
    await application.close()
