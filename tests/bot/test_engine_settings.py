"""Engine and backend settings from the environment."""

from __future__ import annotations

import pytest

from bot.settings import Settings, SettingsError


def test_engine_settings_are_read_and_checked():
    settings = Settings.from_env(
        {
            "ENGINE_MAX_BATCH": "8",
            "ENGINE_MAX_QUEUE": "0",
            "ENGINE_TIMEOUT_S": "12.5",
            "ENGINE_CPU_DTYPE": "FP32",
            "ENGINE_CPU_PREPACK": "false",
            "ENGINE_CUDA_GRAPHS": "false",
            "GENERATION_BACKEND": "openai",
            "OPENAI_BASE_URL": "http://10.0.0.2:8000/v1",
            "OPENAI_EXTRA_PARAMS": "false",
        },
        dotenv_path=None,
    )
    engine = settings.model.engine
    assert (engine.max_batch, engine.max_queue, engine.timeout_s) == (8, 0, 12.5)
    assert engine.cpu_dtype == "fp32" and settings.model.backend == "openai"
    assert engine.cpu_prepack is False and engine.cuda_graphs is False
    assert Settings.from_env({}, dotenv_path=None).model.engine.cpu_prepack is True
    assert settings.model.openai.base_url == "http://10.0.0.2:8000/v1"
    assert settings.model.openai.extra_params is False


BAD = [
    ("ENGINE_MAX_BATCH", "0"),
    ("ENGINE_MAX_PER_USER", "x"),
    ("ENGINE_CPU_DTYPE", "fp8"),
    ("ENGINE_CPU_PREPACK", "maybe"),
    ("OPENAI_BASE_URL", "localhost:8000"),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_bad_engine_settings_name_the_variable(name, value):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({name: value}, dotenv_path=None)
    assert error.value.variable == name
