"""Start-up problems are one clear sentence naming the setting."""

from __future__ import annotations

import socket

import pytest

from admin.fake import scripted_admin
from bot.platforms.discord import DiscordPlatform, DiscordSetupError
from bot.settings import SettingsError
from tests.discord.conftest import discord_config, discord_settings


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_missing_token_is_refused_before_connecting(fake, tmp_path, make_app, backend):
    app = await make_app(discord_settings(tmp_path), backend, scripted_admin())
    with pytest.raises(SettingsError, match=r"^DISCORD_TOKEN: is not set\. Copy the bot token"):
        DiscordPlatform(app, discord_config(fake, token=None))
    assert fake.calls == []


async def test_unreachable_api_names_the_setting(fake, tmp_path, make_app, backend):
    url = f"http://127.0.0.1:{closed_port()}"
    app = await make_app(discord_settings(tmp_path), backend, scripted_admin())
    with pytest.raises(DiscordSetupError) as error:
        await DiscordPlatform(app, discord_config(fake, api_base=url)).run()
    assert str(error.value).startswith(f"cannot reach Discord's API at {url}/api/v10")
    assert "DISCORD_API_BASE" in str(error.value)
