import logging
import socket
from dataclasses import replace

import pytest

from admin.registry import BOOTSTRAP_VERSION, prepare_model
from bot.app import App
from model.versions import hub_reachable
from storage import ModelVersionRepository
from tests.conftest import TINY_BOOTSTRAP


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hub_check_answers_quickly_when_nothing_listens():
    assert not hub_reachable(1.0, f"http://127.0.0.1:{closed_port()}")


def test_unreachable_base_model_falls_back_to_the_bootstrap(db, tmp_path, monkeypatch, caplog):
    from model.config import ModelConfig

    monkeypatch.setattr("admin.registry.hub_reachable", lambda timeout_s: False)
    config = ModelConfig(model_dir=tmp_path / "models", base_model="gpt2", device="cpu")
    versions = ModelVersionRepository(db)
    with caplog.at_level(logging.INFO):
        active = prepare_model(config, versions, TINY_BOOTSTRAP)
    assert active.name == BOOTSTRAP_VERSION and active.status == "active"
    assert (tmp_path / "models" / BOOTSTRAP_VERSION / "metadata.json").exists()
    assert active.metrics["train_seconds"] > 0
    assert "falling back to the offline bootstrap model" in caplog.text
    assert "NOT OpenAI's pretrained weights" in caplog.text
    # the next start reuses it: no second training
    assert prepare_model(config, versions, TINY_BOOTSTRAP).name == BOOTSTRAP_VERSION
    assert len(versions.list()) == 1


def test_a_local_base_model_folder_is_registered_as_is(db, tiny_model_dir, tmp_path):
    from model.config import ModelConfig

    config = ModelConfig(model_dir=tmp_path / "models", base_model=str(tiny_model_dir))
    active = prepare_model(config, ModelVersionRepository(db), TINY_BOOTSTRAP)
    assert active.path == str(tiny_model_dir) and active.base_model == str(tiny_model_dir)
    assert not (tmp_path / "models").exists()  # nothing trained


async def test_app_open_prepares_everything_on_a_fresh_install(settings, tmp_path):
    app = await App.open(settings, bootstrap=TINY_BOOTSTRAP)
    try:
        assert app.backend.model_version == BOOTSTRAP_VERSION
        assert (tmp_path / "data" / "gpt2bot.db").exists()
        from bot.chat import Origin

        finished = await app.chat.generate(Origin("cli", "me"), "Hello", {"seed": 1})
        assert finished.generations[0].model_version == BOOTSTRAP_VERSION
    finally:
        await app.close()


async def test_unknown_backend_is_a_clear_error(settings, tiny_model_dir):
    from bot.plugins import PluginNotFound
    from tests.conftest import register_active

    register_active(settings, tiny_model_dir)
    settings = replace(settings, model=replace(settings.model, backend="nope"))
    with pytest.raises(PluginNotFound, match=r"no gpt2bot\.backends plugin named 'nope'.*local"):
        await App.open(settings)


async def test_one_shot_commands_open_without_loading_a_model(settings, tmp_path):
    app = await App.open(settings, model="none")
    try:
        assert app.backend.model_version == ""  # nothing prepared: a fresh install stays fresh
        assert not (tmp_path / "models").exists()
        assert await app.admin.registry.versions() == []
    finally:
        await app.close()


def test_a_missing_active_folder_is_not_replaced_in_the_database(
    db, tiny_model_dir, tmp_path, caplog
):
    """A process whose MODEL_DIR lacks the active version's folder serves another here, and
    the database keeps naming the active version for every other process (this one follows
    it once it can load it)."""
    from model.config import ModelConfig

    versions = ModelVersionRepository(db)
    versions.add("ft-9", str(tmp_path / "elsewhere" / "ft-9"), "bootstrap")
    versions.activate("ft-9")
    config = ModelConfig(model_dir=tmp_path / "models", base_model=str(tiny_model_dir))
    with caplog.at_level(logging.WARNING):
        served = prepare_model(config, versions, TINY_BOOTSTRAP)
    assert served.path == str(tiny_model_dir) and served.status != "active"
    active = versions.active()
    assert active is not None and active.name == "ft-9"
    assert "active model ft-9 is missing" in caplog.text
