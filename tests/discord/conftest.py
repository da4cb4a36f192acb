"""Fixtures: a fake Discord, an App on a tmp SQLite file, and the real platform connected."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from admin.base import AdminServices
from admin.config import AdminConfig
from admin.fake import scripted_admin
from bot.app import App
from bot.chat import ChatConfig
from bot.platforms.discord import DiscordConfig, DiscordPlatform
from bot.settings import Settings
from model.backends.fake import ScriptedBackend
from storage import GenerationRecord, GenerationRepository, StorageConfig
from tests.discord.fake_discord import FakeDiscord


@pytest.fixture(autouse=True)
def restore_endpoints() -> Any:
    """discord.py keeps its endpoints on classes; put them back after each test."""
    base, gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    yield
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend()


def discord_config(fake: FakeDiscord, **overrides: Any) -> DiscordConfig:
    """The platform's settings, pointed at the fake Discord and scaled down for tests."""
    config = DiscordConfig(
        token=fake.token,
        api_base=f"http://127.0.0.1:{fake.port}",
        gateway_url=fake.gateway_url,
        guild_ids=(fake.guild_id,),
        edit_interval_s=0.2,
    )
    return dataclasses.replace(config, **overrides)


def discord_settings(
    tmp_path: Path, admin: AdminConfig | None = None, cooldown_s: float = 0.0, **chat: Any
) -> Settings:
    return Settings(
        storage=StorageConfig(url=f"sqlite:///{tmp_path / 'bot.db'}"),
        admin=admin or AdminConfig(),
        chat=ChatConfig(cooldown_s=cooldown_s, **chat),
    )


@pytest.fixture
async def make_app() -> AsyncIterator[Callable[..., Awaitable[App]]]:
    """Opens apps the way `gpt2bot run` does; `admin=None` builds the real admin services."""
    apps: list[App] = []

    async def build(settings: Settings, backend: Any, admin: AdminServices | None) -> App:
        app = await App.open(settings, backend=backend, admin=admin)
        apps.append(app)
        return app

    yield build
    for app in apps:
        await app.close()


class Bot:
    """The real platform running against the fake, with helpers to read what it stored."""

    def __init__(self, platform: DiscordPlatform, fake: FakeDiscord) -> None:
        self.platform = platform
        self.fake = fake
        self.app = platform.app
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Bot:
        identified = self.fake.identified
        self.task = asyncio.ensure_future(self.platform.run())
        # READY and GUILD_CREATE are sent; events after them arrive in order, so there is no
        # need to sit out discord.py's 2 s wait for more servers before on_ready
        await self.fake.wait_for(lambda: self.fake.identified > identified, what="the bot")
        return self

    async def stop(self) -> None:
        await self.platform.stop()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)

    def generations(self) -> list[GenerationRecord]:
        return list(GenerationRepository(self.app.db).iter_all())


@pytest.fixture
async def start_bot(
    fake: FakeDiscord,
    tmp_path: Path,
    make_app: Callable[..., Awaitable[App]],
    backend: ScriptedBackend,
) -> AsyncIterator[Callable[..., Any]]:
    bots: list[Bot] = []

    async def start(
        backend_: Any = None,
        services: AdminServices | None = None,
        *,
        real_admin: bool = False,
        admin: AdminConfig | None = None,
        grace: float = 0.5,
        cooldown_s: float = 0.0,
        story_turns: int = 50,
        **overrides: Any,
    ) -> Bot:
        """`services`: the admin services (default: `scripted_admin()`); `real_admin`: the real
        ones, on the test's database; `overrides`: `DiscordConfig` fields."""
        if real_admin:
            assert services is None, "real_admin builds its own services"
        else:
            services = services or scripted_admin()
        settings = discord_settings(tmp_path, admin, cooldown_s, story_max_turns=story_turns)
        app = await make_app(settings, backend_ or backend, services)
        bot = Bot(DiscordPlatform(app, discord_config(fake, **overrides), grace), fake)
        bots.append(bot)
        return await bot.start()

    yield start
    for bot in bots:
        await bot.stop()
