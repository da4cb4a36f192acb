"""`gpt2bot run --platform discord` as a real process against the fake Discord."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from storage import Database, GenerationRepository
from tests.discord.process import (
    EXIT_TIMEOUT_S,
    START_TIMEOUT_S,
    environment,
    save_tiny_model,
    start,
)
from tests.discord.test_generate import finished


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-1")


@pytest.mark.slow
async def test_run_serves_generate_and_exits_cleanly_on_sigterm(fake, tmp_path, tiny_model):
    process = await start(environment(fake, tmp_path, tiny_model, fake.token), tmp_path)
    try:
        await fake.wait_for(lambda: fake.identified, START_TIMEOUT_S, "the bot process to connect")
        interaction = await fake.slash(
            "generate", {"prompt": "The model", "max_new_tokens": 8, "seed": 3}
        )
        message = await finished(fake, interaction)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), EXIT_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    log = stderr.decode()
    assert process.returncode == 0, log
    assert message.content.startswith("**The model**")
    assert "· model tiny-1 ·" in message.content and "seed 3" in message.content
    assert "shutting down: 0 generation(s) finished, 0 stopped" in log  # none was running
    assert "Traceback" not in log
    db = Database(f"sqlite:///{tmp_path / 'bot.db'}")
    [record] = list(GenerationRepository(db).iter_all())
    db.dispose()
    assert record.platform == "discord" and record.message_id == str(message.id)
    assert fake._send is None  # the gateway connection was closed


@pytest.mark.slow
async def test_bad_token_fails_with_one_clear_line(fake, tmp_path, tiny_model):
    env = environment(fake, tmp_path, tiny_model, "not-the-token")
    env["LOG_LEVEL"] = "WARNING"
    process = await start(env, tmp_path)
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), START_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    log = stderr.decode()
    assert process.returncode == 1
    assert [line for line in log.splitlines() if line.startswith("gpt2bot:")] == [
        "gpt2bot: DISCORD_TOKEN was rejected by Discord: copy the bot token from "
        "https://discord.com/developers/applications → your app → Bot → Reset Token, and set "
        "DISCORD_TOKEN in .env."
    ]
    assert log.rstrip().endswith("DISCORD_TOKEN in .env.")
    assert "Traceback" not in log and "ERROR" not in log
