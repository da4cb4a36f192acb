"""HEALTH_PORT, the "preparing" page, JSON logs and the bootstrap progress (real aiohttp on
127.0.0.1, the App over a scripted backend)."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.app import App
from bot.health import HealthConfig
from bot.logs import JsonFormatter
from bot.platforms.health import HealthServer, HealthTarget, PreparingPage
from bot.progress import BootstrapProgress
from bot.settings import Settings
from model.backends.fake import ScriptedBackend


class Platform:
    """A chat platform whose connection the test switches."""

    name = "chat"

    def __init__(self) -> None:
        self.up = False

    async def connected(self) -> bool:
        return self.up


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


@pytest.fixture
async def scripted_app(settings: Settings):
    app = await App.open(settings, backend=ScriptedBackend(model_version="v3"))
    yield app
    await app.close()


async def test_health_port_tells_starting_then_connected_then_stopping(scripted_app: App):
    target = HealthTarget()
    server = HealthServer(HealthConfig(port=0), target)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    platform = Platform()
    try:
        assert await get(f"{base}/healthz") == (200, "ok\n")
        status, body = await get(f"{base}/readyz")
        assert status == 503 and "preparing the model" in json.loads(body)["checks"]["app"]
        assert (await get(f"{base}/metrics"))[0] == 503

        target.attach(scripted_app, platform)
        status, body = await get(f"{base}/readyz")
        assert status == 503 and json.loads(body)["checks"]["chat"] == "not connected"
        platform.up = True
        status, body = await get(f"{base}/readyz")
        assert status == 200
        assert json.loads(body)["checks"] == {
            "database": "ok",
            "model": "ok: v3",
            "chat": "ok: connected",
        }
        status, text = await get(f"{base}/metrics")
        assert status == 200 and 'gpt2bot_model_info{version="v3"} 1.0' in text

        target.detach()
        status, body = await get(f"{base}/readyz")
        assert status == 503 and json.loads(body)["checks"]["app"] == "stopping"
    finally:
        await server.close()


async def test_unset_health_port_listens_nowhere():
    server = HealthServer(HealthConfig(), HealthTarget())
    await server.start()
    assert server.port is None
    await server.close()


async def test_a_busy_health_port_is_one_sentence_naming_the_variable():
    first = HealthServer(HealthConfig(port=0), HealthTarget())
    await first.start()
    try:
        second = HealthServer(HealthConfig(port=first.port), HealthTarget())
        with pytest.raises(ValueError, match=r"cannot listen on 127\.0\.0\.1:\d+ .*HEALTH_PORT"):
            await second.start()
    finally:
        await first.close()


async def test_the_playground_address_says_it_is_preparing_with_the_progress():
    page = PreparingPage("127.0.0.1", 0)
    await page.start()
    base = f"http://127.0.0.1:{page.port}"
    try:
        status, text = await get(f"{base}/")
        assert status == 503 and "preparing the model" in text
        assert 'http-equiv="refresh"' in text
        page.progress(120, 400, 1.5)
        status, text = await get(f"{base}/admin")
        assert status == 503 and "step 120 of 400" in text
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{base}/api/generate", json={"prompt": "hi"}) as response,
        ):
            assert response.status == 503 and response.headers["Retry-After"] == "5"
            assert "starting" in (await response.json())["error"]
        assert (await get(f"{base}/healthz"))[0] == 200
        assert (await get(f"{base}/readyz"))[0] == 503
    finally:
        await page.close()
    assert page.port is None


def test_json_logs_are_one_object_per_line_with_the_traceback_inside():
    logger = logging.getLogger("tests.json")
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        record = logger.makeRecord(
            "tests.json", logging.ERROR, __file__, 1, "failed %s", ("x",), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "tests.json"
    assert entry["message"] == "failed x"
    assert "RuntimeError: boom" in entry["exception"]
    assert entry["time"].endswith("+00:00")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bootstrap_progress_is_a_bar_on_a_terminal_and_log_lines_elsewhere(caplog):
    heard = []
    terminal = Terminal()
    progress = BootstrapProgress(terminal, listeners=[lambda s, t, loss: heard.append(s)])
    for step in range(1, 5):
        progress(step, 4, 2.0)
    assert heard == [1, 2, 3, 4]
    assert terminal.getvalue().count("\r") == 4 and terminal.getvalue().endswith("\n")
    assert "step 4/4" in terminal.getvalue() and "#" * 30 in terminal.getvalue()

    caplog.set_level(logging.INFO, logger="gpt2bot")
    piped = io.StringIO()
    quiet = BootstrapProgress(piped)
    for step in range(1, 101):
        quiet(step, 100, 1.0)
    assert piped.getvalue() == ""  # nothing drawn where nobody watches
    steps = [r.getMessage() for r in caplog.records if "bootstrap training" in r.getMessage()]
    assert len(steps) == 2 and "100%" in steps[-1]


def test_settings_read_health_and_log_format(tmp_path: Path):
    settings = Settings.from_env(
        {"HEALTH_PORT": "9100", "HEALTH_HOST": "0.0.0.0", "LOG_FORMAT": "JSON"}, dotenv_path=None
    )
    assert settings.health == HealthConfig(port=9100, host="0.0.0.0")
    assert settings.log_format == "json"
