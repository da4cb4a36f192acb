"""`gpt2bot run --platform discord` as a real process against the fake Discord."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from transformers import GPT2Config, GPT2LMHeadModel

from model.bootstrap import train_tokenizer
from model.versions import save_version
from storage import Database, GenerationRepository, ModelVersionRepository, upgrade
from tests.discord.fake_discord import FakeDiscord
from tests.discord.test_generate import finished

LINES = [
    "The model writes a short sentence about data.",
    "Training data makes the model better at writing.",
    "A small model can still write a sentence.",
] * 4
START_TIMEOUT_S = 90.0  # importing torch and transformers on a busy 2-core machine
EXIT_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = train_tokenizer(LINES, vocab_size=300)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=1024,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    folder = tmp_path_factory.mktemp("models") / "tiny-1"
    save_version(folder, GPT2LMHeadModel(config), tokenizer, {"base_model": "bootstrap"})
    return folder


def environment(fake: FakeDiscord, tmp_path: Path, model: Path, token: str) -> dict[str, str]:
    database = f"sqlite:///{tmp_path / 'bot.db'}"
    db = Database(database)
    upgrade(db.engine)
    versions = ModelVersionRepository(db)
    versions.add(name="tiny-1", path=str(model), base_model="bootstrap")
    versions.activate("tiny-1")
    db.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SLACK_"))}
    env.update(
        DATABASE_URL=database,
        MODEL_DIR=str(model.parent),
        DEVICE="cpu",
        LOG_LEVEL="INFO",
        HF_HUB_OFFLINE="1",
        DISCORD_TOKEN=token,
        DISCORD_API_BASE=f"http://127.0.0.1:{fake.port}",
        DISCORD_GATEWAY_URL=fake.gateway_url,
        DISCORD_GUILD_IDS=str(fake.guild_id),
        DISCORD_EDIT_INTERVAL_SECONDS="0.2",
        DISCORD_COOLDOWN_SECONDS="0",
    )
    return env


async def start(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    script = Path(sys.executable).with_name("gpt2bot")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
    return await asyncio.create_subprocess_exec(
        *command,
        "--env-file",
        str(cwd / "absent.env"),
        "run",
        "--platform",
        "discord",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


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
