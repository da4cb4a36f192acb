"""Start-up problems are one clear sentence naming the setting."""

from __future__ import annotations

import socket

import pytest

from bot.platforms.discord import DiscordPlatform, DiscordSetupError
from tests.discord.conftest import discord_settings


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_missing_token_is_refused_before_connecting(fake, tmp_path, make_app, backend):
    app = make_app(discord_settings(fake, tmp_path, token=None), backend)
    with pytest.raises(DiscordSetupError, match=r"^DISCORD_TOKEN is not set: copy the bot token"):
        DiscordPlatform(app)
    assert fake.calls == []


async def test_unreachable_api_names_the_setting(fake, tmp_path, make_app, backend):
    url = f"http://127.0.0.1:{closed_port()}"
    app = make_app(discord_settings(fake, tmp_path, api_base=url), backend)
    with pytest.raises(DiscordSetupError) as error:
        await DiscordPlatform(app).run()
    assert str(error.value).startswith(f"cannot reach Discord's API at {url}/api/v10")
    assert "DISCORD_API_BASE" in str(error.value)
