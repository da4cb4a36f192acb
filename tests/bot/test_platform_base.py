"""A platform plugin brings its own settings: `gpt2bot run` reads and checks them from the
environment (`.env` included) before it prepares the model."""

from dataclasses import dataclass, field

import pytest

from bot.platforms.base import NoConfig, platform_config, uses_config
from bot.settings import Settings, SettingsError


@dataclass(frozen=True)
class ChatterConfig:
    """A third-party platform's settings, declared the way ours are."""

    token: str | None = field(default=None, metadata={"env": "CHATTER_TOKEN"})
    rooms: tuple[str, ...] = field(default=(), metadata={"env": "CHATTER_ROOMS"})
    poll_s: float = field(default=2.0, metadata={"env": "CHATTER_POLL_S", "min": 0.5})

    def check(self) -> None:
        if not self.token:
            raise ValueError("CHATTER_TOKEN", "is not set", "Copy it from Chatter's settings.")


@uses_config(ChatterConfig)
def chatter_factory(app, options, config):
    raise AssertionError("reading settings never builds the platform")


def plain_factory(app, options, config):
    raise AssertionError("reading settings never builds the platform")


def test_a_third_party_platform_reads_its_settings_from_dotenv(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("CHATTER_TOKEN=abc\nCHATTER_ROOMS=lobby, dev\nCHATTER_POLL_S=1.5\n")
    settings = Settings.from_env({}, dotenv_path=env_file)
    config = platform_config(chatter_factory, settings)
    assert config == ChatterConfig(token="abc", rooms=("lobby", "dev"), poll_s=1.5)
    assert platform_config(plain_factory, settings) == NoConfig()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, r"^CHATTER_TOKEN: is not set\. Copy it from Chatter's settings\.$"),
        ({"CHATTER_TOKEN": "x", "CHATTER_POLL_S": "0.1"}, r"^CHATTER_POLL_S: '0\.1' is not a"),
    ],
)
def test_its_bad_settings_are_one_clear_line(env, message):
    with pytest.raises(SettingsError, match=message):
        platform_config(chatter_factory, Settings.from_env(env, dotenv_path=None))


def test_the_preparing_page_is_for_platforms_that_say_they_serve_http():
    from bot import plugins
    from bot.platforms.base import platform_serves_http, serves_http

    assert platform_serves_http(plugins.load(plugins.PLATFORM_GROUP, "web"))
    assert not platform_serves_http(plugins.load(plugins.PLATFORM_GROUP, "discord"))

    @serves_http
    def http_factory(app, options, config):
        raise AssertionError("never built here")

    assert platform_serves_http(http_factory)  # a third party's platform says so too
