"""Fixtures for the web platform: a real App on a tmp SQLite with a tiny bootstrap model (and
the real admin services `App.open` builds), and aiohttp's test client against the real web
application; for retrain flows, an App over admin services the test scripts
(`admin.fake.scripted_admin`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from web_helpers import ADMIN_TOKEN, TINY, Browser, make_settings, open_browser

from admin.fake import ScriptedAdmin, scripted_admin
from admin.registry import BOOTSTRAP_VERSION
from bot.app import App
from bot.platforms.web import build_web_app
from bot.platforms.web.security import Guard
from model.backends.fake import ScriptedBackend
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
    """The App as `gpt2bot run` builds it: the tiny model served, the real admin services
    with their retrain schedule started (`background`)."""
    settings = make_settings(tmp_path, model_dir)
    opened = await App.open(settings, bootstrap=TINY, background=True)
    yield opened
    await opened.close()


@pytest.fixture
async def browser(app: App) -> AsyncIterator[Browser]:
    """A browser on the web app (not logged in)."""
    client, visitor = await open_browser(build_web_app(app, Guard(admin_token=ADMIN_TOKEN)))
    yield visitor
    await client.close()


@pytest.fixture
async def admin_browser(browser: Browser) -> Browser:
    """A logged-in admin's browser on the web app over the real admin services."""
    await browser.login()
    return browser


@pytest.fixture
async def scripted_admin_app(
    tmp_path: Path, model_dir: Path
) -> AsyncIterator[tuple[App, ScriptedAdmin]]:
    """An App whose admin services answer what the test says (training runs start and end
    without training anything) over a scripted backend."""
    folder = tmp_path / "scripted-admin"
    folder.mkdir()
    admin = scripted_admin()
    opened = await App.open(
        make_settings(folder, model_dir), backend=ScriptedBackend(), admin=admin
    )
    yield opened, admin
    await opened.close()


@pytest.fixture
async def scripted_admin_browser(
    scripted_admin_app: tuple[App, ScriptedAdmin],
) -> AsyncIterator[tuple[Browser, App, ScriptedAdmin]]:
    """A logged-in admin's browser on the App over the scripted admin services."""
    app, admin = scripted_admin_app
    client, visitor = await open_browser(build_web_app(app, Guard(admin_token=ADMIN_TOKEN)))
    await visitor.login()
    yield visitor, app, admin
    await client.close()
