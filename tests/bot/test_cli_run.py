"""`gpt2bot run` as a container or a service runs it: /readyz on HEALTH_PORT and on the web
server, /metrics, JSON logs, and a clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.settings import Settings
from tests.conftest import register_active
from tests.slack.test_run import START_TIMEOUT_S, free_port

GPT2BOT = Path(sys.executable).with_name("gpt2bot")


async def wait_ready(url: str, process: asyncio.subprocess.Process) -> dict[str, object]:
    async with aiohttp.ClientSession() as session:
        for _ in range(START_TIMEOUT_S * 10):
            assert process.returncode is None, "gpt2bot run exited early"
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return dict(await response.json())
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail("gpt2bot run did not become ready")


@pytest.mark.slow
async def test_run_serves_readyz_on_health_port_and_logs_json(
    tmp_path: Path, settings: Settings, tiny_model_dir: Path
) -> None:
    register_active(settings, tiny_model_dir)
    web_port, health_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SLACK_"))},
        "DATABASE_URL": settings.storage.url,
        "MODEL_DIR": str(tmp_path / "models"),
        "BASE_MODEL": "bootstrap",
        "DEVICE": "cpu",
        "ADMIN_TOKEN": "a-test-admin-token-of-some-length",
        "HEALTH_PORT": str(health_port),
        "LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        str(GPT2BOT), "run", "--platform", "web", "--port", str(web_port),
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        ready = await wait_ready(f"http://127.0.0.1:{health_port}/readyz", process)
        assert ready["checks"] == {"database": "ok", "model": "ok: tiny-1"}
        await wait_ready(f"http://127.0.0.1:{web_port}/readyz", process)
        metrics = f"http://127.0.0.1:{health_port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(metrics) as response:
            assert response.status == 200
            assert 'gpt2bot_model_info{version="tiny-1"} 1.0' in await response.text()
        healthy = await health(tmp_path, env)  # what the container's HEALTHCHECK runs
        assert healthy.returncode == 0, healthy.stderr
        assert healthy.stdout == "ready: database ok, model ok: tiny-1\n"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    logged = [line for line in stderr.decode().splitlines() if line.startswith("{")]
    entries = [json.loads(line) for line in logged]
    assert any(f":{health_port}/healthz" in e["message"] for e in entries)
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    gone = await health(tmp_path, env)
    assert gone.returncode == 1 and "nothing answers at http://127.0.0.1:" in gone.stderr


async def health(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [str(GPT2BOT), "health"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
