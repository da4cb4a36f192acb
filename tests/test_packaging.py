"""The product owner's layout installs as one app whose packages come from this repository."""

from importlib.metadata import entry_points
from pathlib import Path

import admin
import bot
import model
import storage

REPO = Path(__file__).resolve().parent.parent


def test_the_four_packages_import_from_this_repository():
    for package in (bot, model, storage, admin):
        assert Path(package.__file__).resolve().parent.parent == REPO, package.__file__


def test_local_backend_is_discovered_through_its_entry_point():
    from model.backends.base import Backend
    from model.backends.local import LocalBackend
    from model.config import ModelConfig

    (local,) = entry_points(group="gpt2bot.backends", name="local")
    assert local.load() is LocalBackend
    assert isinstance(LocalBackend(ModelConfig(device="cpu"), "v1", "/nowhere"), Backend)


def test_bundled_corpus_is_ours_and_large_enough():
    from model.bootstrap import bundled_corpus

    lines = bundled_corpus()
    assert len(lines) >= 150
    assert len(set(lines)) == len(lines)
