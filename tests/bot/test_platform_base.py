"""Platform factories may carry a settings check that `gpt2bot run` calls before loading."""

from dataclasses import replace

import pytest

from bot.platforms.base import check_settings, checks_settings
from bot.settings import Settings


def refuse_without_a_model_dir(settings: Settings) -> None:
    if settings.model.model_dir.name != "models":
        raise ValueError("MODEL_DIR: must end in models")


@checks_settings(refuse_without_a_model_dir)
def checked_factory(app, options):
    raise AssertionError("a settings check never builds the platform")


def plain_factory(app, options):
    raise AssertionError("a settings check never builds the platform")


def test_a_third_party_factory_can_refuse_its_settings(settings, tmp_path):
    check_settings(plain_factory, settings)  # no check: nothing to refuse
    right = replace(settings, model=replace(settings.model, model_dir=tmp_path / "models"))
    check_settings(checked_factory, right)
    wrong = replace(settings, model=replace(settings.model, model_dir=tmp_path / "elsewhere"))
    with pytest.raises(ValueError, match=r"^MODEL_DIR: must end in models$"):
        check_settings(checked_factory, wrong)
