"""A fleet of real `gpt2bot run` processes on one SQLite file (test support): two tiny GPT-2
versions under one MODEL_DIR, the environment every process shares (`OMP_NUM_THREADS=1`, a short
`FOLLOW_INTERVAL_S`, this checkout's packages), web processes with a browser session each,
and one-shot commands from a shell."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.platforms.web.security import CSRF_HEADER
from storage import Database, ModelVersionRepository, upgrade
from tests.discord.process import save_tiny_model
from tests.web.web_helpers import parse_sse

ADMIN_TOKEN = "fleet-admin-token-0123456789"

REPO = Path(__file__).resolve().parents[1]
FOLLOW_INTERVAL_S = 0.3
START_TIMEOUT_S = 120.0  # importing torch and transformers on a busy 2-core machine
# a change is noticed within one interval and the tiny model loads in well under a second;
# a shared, busy CI machine gets room on top
FOLLOW_BOUND_S = 2 * FOLLOW_INTERVAL_S + 10.0
COMMAND_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Bot:
    """One `gpt2bot run --platform web` process and a browser session on it."""

    process: asyncio.subprocess.Process
    port: int
    log: Path
    session: aiohttp.ClientSession | None = None
    csrf: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def readyz(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"{self.url}/readyz") as response,
        ):
            return dict(await response.json())

    async def browse(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            async with self.session.get(f"{self.url}/api/session") as response:
                self.csrf = (await response.json())["csrf"]
        return self.session

    async def post(self, path: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
        session = await self.browse()
        return await session.post(f"{self.url}{path}", json=body, headers={CSRF_HEADER: self.csrf})

    async def generate(self, prompt: str) -> dict[str, Any]:
        response = await self.post(
            "/api/generate", {"prompt": prompt, "params": {"max_new_tokens": 3}}
        )
        assert response.status == 200, await response.text()
        name, done = parse_sse(await response.text())[-1]
        assert name == "done", done
        return dict(done["generations"][0])


def fresh_postgres() -> str:
    """A new, empty database on the server of TEST_DATABASE_URL (each test its own)."""
    server = make_url(os.environ["TEST_DATABASE_URL"])
    name = f"fleet_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
    finally:
        engine.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


def install(tmp_path: Path, database: str | None = None) -> dict[str, str]:
    """Two tiny versions under one MODEL_DIR, v1 active, and the environment of every process;
    `database`: a fresh database's URL (default: a SQLite file in `tmp_path`)."""
    models = tmp_path / "models"
    for name in ("v1", "v2"):
        save_tiny_model(models / name)
    database = database or f"sqlite:///{tmp_path / 'fleet.db'}"
    db = Database(database)
    upgrade(db.engine)
    versions = ModelVersionRepository(db)
    for name in ("v1", "v2"):
        versions.add(name, str(models / name), "bootstrap")
    versions.activate("v1")
    db.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SLACK_"))}
    env.update(
        DATABASE_URL=database,
        MODEL_DIR=str(models),
        DEVICE="cpu",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        ENGINE_CPU_NATIVE_ATTENTION="false",  # nothing to compile in a test
        FOLLOW_INTERVAL_S=str(FOLLOW_INTERVAL_S),
        COOLDOWN_SECONDS="0",
        LOG_LEVEL="INFO",
        ADMIN_TOKEN=ADMIN_TOKEN,
        ADMIN_TOKEN_FILE=str(tmp_path / "admin_token"),
        PYTHONPATH=str(REPO),  # this checkout's packages, whatever is installed
    )
    return env


def command(*words: str) -> list[str]:
    return [sys.executable, "-m", "bot.cli", "--env-file", "absent.env", *words]


async def start_process(env: dict[str, str], cwd: Path, name: str, *words: str) -> Bot:
    """`gpt2bot run WORDS...` with its output in `cwd/NAME.log` (a pipe would fill up)."""
    port = free_port()
    log = cwd / f"{name}.log"
    with open(log, "wb") as out:
        process = await asyncio.create_subprocess_exec(
            *command("run", *words, "--port", str(port)),
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=out,
        )
    return Bot(process, port, log)


async def start_web(env: dict[str, str], cwd: Path, name: str) -> Bot:
    return await start_process(env, cwd, name, "--platform", "web")


async def ready(bot: Bot) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if (await bot.readyz())["ready"]:
                return
        except (aiohttp.ClientError, json.JSONDecodeError):
            pass
        assert bot.process.returncode is None, bot.log.read_text()[-3000:]
        assert time.monotonic() < deadline, bot.log.read_text()[-3000:]
        await asyncio.sleep(0.3)


async def gpt2bot(env: dict[str, str], cwd: Path, *words: str) -> tuple[int, str, str]:
    """A one-shot command from a shell: its exit status, standard output and error."""
    process = await asyncio.create_subprocess_exec(
        *command(*words),
        env={**env, "LOG_LEVEL": "WARNING"},
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_S)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def serves(bot: Bot, version: str) -> float:
    """Seconds until `bot` serves `version` and says it matches the database."""
    started = time.monotonic()
    while True:
        model = (await bot.readyz())["model"]
        if model["served"] == version and model.get("matches"):
            return time.monotonic() - started
        assert time.monotonic() - started < FOLLOW_BOUND_S, (model, bot.log.read_text()[-2000:])
        await asyncio.sleep(0.05)


async def stop(bots: list[Bot]) -> None:
    """SIGTERM every process still running (a clean stop), SIGKILL after 30 s."""
    for bot in bots:
        if bot.session is not None:
            await bot.session.close()
        if bot.process.returncode is None:
            bot.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(bot.process.wait(), 30)
            except TimeoutError:
                bot.process.kill()
                await bot.process.wait()
