"""`gpt2bot run --platform discord` as a real process against the fake Discord (test support)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from transformers import GPT2Config, GPT2LMHeadModel

from model.bootstrap import train_tokenizer
from model.versions import save_version
from storage import Database, ModelVersionRepository, upgrade
from tests.discord.fake_discord import FakeDiscord

LINES = [
    "The model writes a short sentence about data.",
    "Training data makes the model better at writing.",
    "A small model can still write a sentence.",
] * 4
START_TIMEOUT_S = 90.0  # importing torch and transformers on a busy 2-core machine
EXIT_TIMEOUT_S = 30.0


def save_tiny_model(folder: Path, n_embd: int = 32, n_layer: int = 1) -> Path:
    """A random GPT-2 with its own small tokenizer, saved as version `folder.name`."""
    tokenizer = train_tokenizer(LINES, vocab_size=300)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=1024,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    save_version(folder, GPT2LMHeadModel(config), tokenizer, {"base_model": "bootstrap"})
    return folder


def environment(fake: FakeDiscord, tmp_path: Path, model: Path, token: str) -> dict[str, str]:
    """The bot's environment: a fresh SQLite file with `model` active, pointed at `fake`."""
    database = f"sqlite:///{tmp_path / 'bot.db'}"
    db = Database(database)
    upgrade(db.engine)
    versions = ModelVersionRepository(db)
    versions.add(name=model.name, path=str(model), base_model="bootstrap")
    versions.activate(model.name)
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
    """Start `gpt2bot run --platform discord` with `env` (no .env file is read)."""
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


async def stop(process: asyncio.subprocess.Process) -> str:
    """Stop the bot as a service manager would (SIGTERM); its log (stderr)."""
    process.terminate()
    _, stderr = await asyncio.wait_for(process.communicate(), EXIT_TIMEOUT_S)
    return stderr.decode()
