import pytest

from bot.settings import Settings, SettingsError


def load(**env):
    return Settings.from_env(env, dotenv_path=None)


def test_defaults_match_the_documented_contract():
    settings = load()
    assert settings.storage.url == "sqlite:///./data/gpt2bot.db"
    assert str(settings.model.model_dir) == "models"
    assert settings.model.base_model == "gpt2"
    assert settings.model.device == "auto"
    assert settings.discord.token is None and settings.slack.bot_token is None


def test_dotenv_file_is_read_and_the_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("BASE_MODEL=bootstrap\nLOG_LEVEL=debug\nDISCORD_GUILD_IDS=1,2\n")
    settings = Settings.from_env({"LOG_LEVEL": "warning"}, dotenv_path=env_file)
    assert settings.model.base_model == "bootstrap"
    assert settings.log_level == "WARNING"
    assert settings.discord.guild_ids == (1, 2)


@pytest.mark.parametrize(
    ("env", "variable", "hint"),
    [
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL", "sqlite:///"),
        ({"DEVICE": "tpu"}, "DEVICE", "auto, cpu, cuda, mps"),
        ({"DTYPE": "int3"}, "DTYPE", "fp32"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL", "DEBUG"),
        ({"DISCORD_GUILD_IDS": "123,abc"}, "DISCORD_GUILD_IDS", "numeric ids"),
        ({"DISCORD_API_BASE": "localhost:8000"}, "DISCORD_API_BASE", "https://"),
        ({"DISCORD_GATEWAY_URL": "http://x"}, "DISCORD_GATEWAY_URL", "wss://"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET", "Socket Mode"),
        ({"SLACK_APP_TOKEN": "xoxb-wrong"}, "SLACK_APP_TOKEN", "app-level token"),
        ({"RETRAIN_CRON": "every sunday"}, "RETRAIN_CRON", "five fields"),
    ],
)
def test_bad_values_name_the_variable_and_the_fix(env, variable, hint):
    with pytest.raises(SettingsError) as caught:
        load(**env)
    message = str(caught.value)
    assert caught.value.variable == variable
    assert message.startswith(f"{variable}:")
    assert hint in message
    assert "\n" not in message


def test_model_dir_that_is_a_file_is_refused(tmp_path):
    file = tmp_path / "models"
    file.write_text("")
    with pytest.raises(SettingsError, match=r"MODEL_DIR: .* is a file"):
        load(MODEL_DIR=str(file))


def test_every_variable_is_documented_in_env_example():
    from pathlib import Path

    documented = Path(__file__).resolve().parents[2].joinpath(".env.example").read_text()
    for variable in (
        "DATABASE_URL",
        "MODEL_DIR",
        "BASE_MODEL",
        "DEVICE",
        "DTYPE",
        "DISCORD_TOKEN",
        "DISCORD_API_BASE",
        "DISCORD_GATEWAY_URL",
        "DISCORD_GUILD_IDS",
        "ADMIN_USER_IDS",
        "ADMIN_ROLE",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "SLACK_API_URL",
        "RETRAIN_CRON",
        "LOG_LEVEL",
        "ADMIN_TOKEN",
        "ADMIN_TOKEN_FILE",
        "DISCORD_EDIT_INTERVAL_SECONDS",
        "DISCORD_COOLDOWN_SECONDS",
        "DISCORD_DM_POLICY",
        "RATING_MIN_SCORE",
        "RATING_MIN_RATERS",
        "PROMOTE_TOLERANCE",
        "AUTO_PROMOTE",
        "TRAIN_EPOCHS",
        "TRAIN_LEARNING_RATE",
        "TRAIN_BATCH_SIZE",
        "TRAIN_GRAD_ACCUM",
        "TRAIN_BLOCK_SIZE",
        "TRAIN_CHECKPOINT_EVERY",
        "GENERATION_BACKEND",
        "ENGINE_MAX_BATCH",
        "ENGINE_MAX_QUEUE",
        "ENGINE_MAX_PER_USER",
        "ENGINE_TIMEOUT_S",
        "ENGINE_CPU_DTYPE",
        "ENGINE_CPU_PREPACK",
        "ENGINE_CUDA_GRAPHS",
        "ENGINE_MAX_PREFILL_TOKENS",
        "ENGINE_METRICS_LOG_INTERVAL_S",
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        "OPENAI_MODEL",
        "OPENAI_EXTRA_PARAMS",
    ):
        assert f"{variable}=" in documented, variable
