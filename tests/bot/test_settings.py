import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from bot.platforms.discord import DiscordConfig
from bot.platforms.slack import SlackConfig
from bot.settings import Settings, SettingsError, check_config, read_config, variables


def load(**env):
    return Settings.from_env(env, dotenv_path=None)


def load_all(**env):
    """The core settings and the built-in platforms' own, as `gpt2bot run` reads them."""
    settings = load(**env)
    read_config(DiscordConfig, settings.env)
    slack = read_config(SlackConfig, settings.env)
    if slack.bot_token:
        check_config(slack)
    return settings


def test_defaults_match_the_documented_contract():
    settings = load()
    assert settings.storage.url == "sqlite:///./data/gpt2bot.db"
    assert str(settings.model.model_dir) == "models"
    assert settings.model.base_model == "gpt2"
    assert settings.model.device == "auto"
    assert settings.log_level is None  # INFO for `gpt2bot run`, WARNING for one-shot commands
    assert read_config(DiscordConfig, settings.env) == DiscordConfig()


def test_dotenv_file_is_read_and_the_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("BASE_MODEL=bootstrap\nLOG_LEVEL=debug\nDISCORD_GUILD_IDS=1,2\n")
    settings = Settings.from_env({"LOG_LEVEL": "warning"}, dotenv_path=env_file)
    assert settings.model.base_model == "bootstrap"
    assert settings.log_level == "WARNING"
    assert read_config(DiscordConfig, settings.env).guild_ids == (1, 2)


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
        ({"COOLDOWN_SECONDS": "soon"}, "COOLDOWN_SECONDS", "from 0 to 3600"),
        ({"ADMIN_ROLE": "gpt2bot-admin"}, "ADMIN_ROLE", "numeric ids"),
    ],
)
def test_bad_values_name_the_variable_and_the_fix(env, variable, hint):
    with pytest.raises(SettingsError) as caught:
        load_all(**env)
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


def test_whole_number_settings_refuse_fractions():
    with pytest.raises(SettingsError, match=r"^TRAIN_EPOCHS: '2\.5' is not a whole number"):
        load(TRAIN_EPOCHS="2.5")
    with pytest.raises(SettingsError, match=r"^ENGINE_MAX_BATCH: '8\.0x' is not a whole number"):
        load(ENGINE_MAX_BATCH="8.0x")
    assert load(TRAIN_EPOCHS="5").learning.finetune.epochs == 5


def _configured_variables() -> set[str]:
    """Every variable the config classes read: the core's and each of our own platforms'
    (a third-party plugin, such as examples/linechat, documents its own)."""
    names = set(variables(Settings))
    for entry in entry_points(group="gpt2bot.platforms"):
        if entry.dist is not None and entry.dist.name != "gpt2bot":
            continue
        config_class = getattr(entry.load(), "config_class", None)
        if config_class is not None:
            names |= set(variables(config_class))
    return names


def test_env_example_documents_exactly_the_variables_the_config_classes_read():
    text = Path(__file__).resolve().parents[2].joinpath(".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    configured = _configured_variables()
    assert {"ENGINE_MAX_BATCH", "DISCORD_TOKEN", "SLACK_BOT_TOKEN", "ADMIN_TOKEN"} <= configured
    assert configured - documented == set(), "add these to .env.example"
    assert documented - configured == set(), "these are documented but nothing reads them"
