"""`gpt2bot run --platform slack --port P` end to end: the console script serves signed Slack
requests with the real (tiny) model, answers through the fake Web API, and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.settings import Settings
from storage import Database, GenerationRepository
from tests.conftest import register_active
from tests.slack.conftest import SECRET, SignedClient
from tests.slack.fake_slack import FakeSlack

GPT2BOT = Path(sys.executable).with_name("gpt2bot")
START_TIMEOUT_S = 90  # importing torch and loading the model on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_until_serving(url: str, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(START_TIMEOUT_S * 10):
            assert process.returncode is None, "gpt2bot run exited early"
            try:
                async with session.get(url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    pytest.fail("gpt2bot run did not start serving")


@pytest.mark.slow
async def test_gpt2bot_run_serves_slack_with_the_real_model(
    tmp_path: Path, settings: Settings, tiny_model_dir: Path, fake_slack: FakeSlack
) -> None:
    register_active(settings, tiny_model_dir)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SLACK_"))},
        "DATABASE_URL": settings.storage.url,
        "MODEL_DIR": str(tmp_path / "models"),
        "BASE_MODEL": "bootstrap",
        "DEVICE": "cpu",
        "LOG_LEVEL": "WARNING",
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": f"{fake_slack.url}/api/",
    }
    process = await asyncio.create_subprocess_exec(
        str(GPT2BOT),
        "run",
        "--platform",
        "slack",
        "--port",
        str(port),
        cwd=tmp_path,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_until_serving(url, process)
        async with aiohttp.ClientSession() as session:
            slack = SignedClient(url, fake_slack, session)
            status, _ = await slack.command("/generate", "max_new_tokens=6 seed=5 A language model")
            assert status == 200
            await fake_slack.wait_for(lambda: len(fake_slack.called("reactions.add")) == 4, 60)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, stderr.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    database = Database(settings.storage.url)
    try:
        generation = GenerationRepository(database).get(1)
    finally:
        database.dispose()
    assert generation.model_version == "tiny-1" and generation.seed == 5
    (message,) = fake_slack.messages.values()
    assert generation.message_id == f"C1:{message['ts']}"
    assert "*A language model*" in message["text"] and "#1 · model tiny-1" in message["text"]
