"""Admin token handling, settings, the host warning, and `gpt2bot run` serving the playground."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from web_helpers import web_config

from bot.app import App
from bot.platforms.base import RunOptions, platform_config
from bot.platforms.web import WebConfig, create
from bot.platforms.web.security import load_admin_token
from bot.settings import Settings, SettingsError

RUN_START_TIMEOUT_S = 60  # the subprocess imports torch and loads the model first


def test_admin_token_is_generated_once_printed_and_kept_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = WebConfig(admin_token=None, admin_token_file=tmp_path / "data" / "admin_token")
    token = load_admin_token(config)
    assert len(token) >= 24
    assert token in capsys.readouterr().err
    assert (config.admin_token_file.stat().st_mode & 0o777) == 0o600
    assert load_admin_token(config) == token  # kept, not regenerated
    assert token not in capsys.readouterr().err  # and printed only the first time
    assert (
        load_admin_token(WebConfig(admin_token="x" * 20, admin_token_file=tmp_path / "n"))
        == "x" * 20
    )


def web_settings(env: dict[str, str]) -> WebConfig:
    """The web platform's config, read as `gpt2bot run` reads it (`platform_config`)."""
    config = platform_config(create, Settings.from_env(env, dotenv_path=None))
    assert isinstance(config, WebConfig)
    return config


def test_admin_token_setting_is_validated() -> None:
    config = web_settings({"ADMIN_TOKEN": "a-long-enough-token-123"})
    assert config.admin_token == "a-long-enough-token-123"
    with pytest.raises(SettingsError, match="ADMIN_TOKEN: is 5 characters long"):
        web_settings({"ADMIN_TOKEN": "short"})
    default = web_settings({})
    assert default.admin_token is None and default.admin_token_file.name == "admin_token"


async def test_binding_beyond_localhost_prints_a_warning(
    app: App, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create(app, RunOptions(host="127.0.0.1", port=0), web_config(tmp_path))
    assert "WARNING" not in capsys.readouterr().err
    create(app, RunOptions(host="0.0.0.0", port=0), web_config(tmp_path))
    assert "WARNING: the web playground listens on 0.0.0.0" in capsys.readouterr().err


async def test_platform_serves_on_a_port_and_stops(app: App, tmp_path: Path) -> None:
    platform = create(app, RunOptions(host="127.0.0.1", port=0), web_config(tmp_path))
    url = await platform.start()
    assert url.startswith("http://127.0.0.1:")
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url + "/") as response:
        assert response.status == 200 and "playground" in await response.text()
    await platform.stop()
    assert platform.runner is not None
    await platform.runner.cleanup()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_gpt2bot_run_serves_the_playground_by_default(tmp_path: Path, model_dir: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
        "MODEL_DIR": str(model_dir),
        "BASE_MODEL": "bootstrap",
        "DEVICE": "cpu",
        "ADMIN_TOKEN_FILE": str(tmp_path / "admin_token"),
    }
    for name in ("DISCORD_TOKEN", "SLACK_BOT_TOKEN", "ADMIN_TOKEN"):
        env.pop(name, None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "--env-file",
            str(tmp_path / "none.env"),
            "run",
            "--port",
            str(port),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + RUN_START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as page:
                    assert "gpt2bot playground" in page.read().decode()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "gpt2bot run did not start serving"
                time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    token = (tmp_path / "admin_token").read_text().strip()
    assert token in err and f"http://127.0.0.1:{port}/admin" in err
    assert "Traceback" not in err
