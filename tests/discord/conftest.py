"""Fixtures: a fake Discord, an App on a tmp SQLite file, and the real platform connected."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.app import App
from bot.chat import ChatService
from bot.platforms.discord import DiscordPlatform
from bot.settings import AdminConfig, DiscordConfig, Settings
from storage import (
    AuditRepository,
    Database,
    GenerationRecord,
    GenerationRepository,
    ModelVersionRepository,
    StorageConfig,
    upgrade,
)
from tests.discord.fake_discord import FakeDiscord
from tests.discord.fakes import ScriptedBackend


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


def discord_settings(fake: FakeDiscord, tmp_path: Path, **overrides: Any) -> Settings:
    admin = overrides.pop("admin", AdminConfig())
    config = DiscordConfig(
        token=fake.token,
        api_base=f"http://127.0.0.1:{fake.port}",
        gateway_url=fake.gateway_url,
        guild_ids=(fake.guild_id,),
        edit_interval_s=0.2,
        cooldown_s=0.0,
    )
    return Settings(
        storage=StorageConfig(url=f"sqlite:///{tmp_path / 'bot.db'}"),
        discord=dataclasses.replace(config, **overrides),
        admin=admin,
    )


@pytest.fixture
async def make_app(tmp_path: Path) -> AsyncIterator[Callable[..., App]]:
    apps: list[App] = []

    def build(settings: Settings, backend: Any) -> App:
        db = Database(settings.storage.url)
        upgrade(db.engine)
        app = App(
            settings=settings,
            db=db,
            versions=ModelVersionRepository(db),
            audit=AuditRepository(db),
            backend=backend,
            chat=ChatService(db, backend),
        )
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
    fake: FakeDiscord, tmp_path: Path, make_app: Callable[..., App], backend: ScriptedBackend
) -> AsyncIterator[Callable[..., Any]]:
    bots: list[Bot] = []

    async def start(
        backend_: Any = None, admin_service: Any = None, grace: float = 0.5, **overrides: Any
    ) -> Bot:
        app = make_app(discord_settings(fake, tmp_path, **overrides), backend_ or backend)
        if admin_service is not None:
            app.admin = admin_service  # type: ignore[attr-defined]
        bot = Bot(DiscordPlatform(app, shutdown_grace_s=grace), fake)
        bots.append(bot)
        return await bot.start()

    yield start
    for bot in bots:
        await bot.stop()
