"""Fixtures for the web platform: a real App on a tmp SQLite with a tiny bootstrap model, and
aiohttp's test client against the real web application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from web_helpers import ADMIN_TOKEN, TINY, Browser, InTestAdmin, make_settings, open_browser

from bot.app import BOOTSTRAP_VERSION, App
from bot.platforms.web import build_web_app
from bot.platforms.web.security import Guard
from model.bootstrap import build_bootstrap
from model.versions import version_dir


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny bootstrap model for the whole session (read-only for the tests)."""
    folder = tmp_path_factory.mktemp("models")
    build_bootstrap(version_dir(folder, BOOTSTRAP_VERSION), config=TINY)
    return folder


@pytest.fixture
async def app(tmp_path: Path, model_dir: Path) -> AsyncIterator[App]:
    opened = await App.open(make_settings(tmp_path, model_dir), bootstrap=TINY)
    yield opened
    await opened.close()


@pytest.fixture
async def browser(app: App) -> AsyncIterator[Browser]:
    """A browser on the web app, without an admin service (as on a build without the loop)."""
    app.admin = None
    client, visitor = await open_browser(build_web_app(app, Guard(admin_token=ADMIN_TOKEN)))
    yield visitor
    await client.close()


@pytest.fixture
async def admin_browser(app: App) -> AsyncIterator[tuple[Browser, InTestAdmin]]:
    """A logged-in admin's browser on a web app whose App has an admin service."""
    service = InTestAdmin(app)
    app.admin = service  # type: ignore[attr-defined]
    client, visitor = await open_browser(build_web_app(app, Guard(admin_token=ADMIN_TOKEN)))
    await visitor.login()
    yield visitor, service
    await client.close()
