"""`gpt2bot status` and what `models use|rollback` and `ab start|stop` say of the processes
that serve: a running bot (an App started as `gpt2bot run` starts it) follows a command from
the shell, and `--wait` returns once it serves the change, or says which did not and why."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from admin.follow import ProcessIdentity
from admin.moderation.fake import FakeModerator
from bot.app import App
from bot.cli import main
from bot.health import readiness
from bot.settings import Settings
from model.backends.fake import ScriptedBackend
from tests.bot.test_ab import install


class Unloadable(ScriptedBackend):
    """A machine whose MODEL_DIR lacks the folders in `missing`."""

    def __init__(self) -> None:
        super().__init__(model_version="tiny-1")
        self.missing: set[str] = set()

    async def swap(self, version: str, path: str) -> None:
        if version in self.missing:
            raise OSError(f"{path} is missing")
        await super().swap(version, path)


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    env = tmp_path / ".env"
    env.write_text(
        f"DATABASE_URL=sqlite:///{tmp_path / 'bot.db'}\nMODEL_DIR={tmp_path / 'models'}\n"
        "LOG_LEVEL=WARNING\nFOLLOW_INTERVAL_S=0.1\n"
    )
    install(Settings.from_env({}, dotenv_path=env))
    return env


@pytest.fixture
async def bot(env_file: Path) -> AsyncIterator[tuple[App, Unloadable]]:
    """A serving bot on the same database, following it as `gpt2bot run` does."""
    backend = Unloadable()
    app = await App.open(
        Settings.from_env({}, dotenv_path=env_file),
        backend=backend,
        moderator=FakeModerator(),
        process=ProcessIdentity("web"),
    )
    yield app, backend
    await app.close()


async def gpt2bot(env_file: Path, *words: str) -> int:
    return await asyncio.to_thread(main, ["--env-file", str(env_file), *words])


async def test_a_shell_command_waits_until_the_running_bot_serves_it(
    env_file: Path, bot: tuple[App, Unloadable], capsys: pytest.CaptureFixture[str]
) -> None:
    _, backend = bot
    assert await gpt2bot(env_file, "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    (process,) = status["processes"]
    assert status["active"] == "tiny-1" and process["served_version"] == "tiny-1"
    assert (process["host"], process["platform"]) == (socket.gethostname(), "web")

    assert await gpt2bot(env_file, "models", "use", "better", "--wait") == 0
    err = capsys.readouterr().err
    assert "The database now names better the active version. 1 live process: all serve it." in err
    assert backend.model_version == "better"  # hot-swapped by the running bot

    assert await gpt2bot(env_file, "models", "rollback") == 0  # without --wait: who follows
    err = capsys.readouterr().err  # (the bot may have followed before the command looked)
    said = ("1 live process: 0 serve it, 1 will follow within 0.1 s.", "1 live process: all serve")
    assert any(words in err for words in said), err
    await asyncio.sleep(0.5)
    assert await gpt2bot(env_file, "status") == 0
    out = capsys.readouterr().out
    assert "database: active tiny-1" in out and "serves tiny-1" in out and " ok" in out

    assert await gpt2bot(env_file, "ab", "start", "better", "--wait") == 0
    assert "experiment #1 now runs. 1 live process: all serve it." in capsys.readouterr().err
    assert backend.resident_versions == ("tiny-1", "better")
    assert await gpt2bot(env_file, "ab", "stop", "--wait") == 0
    assert "experiment #1 now has ended. 1 live process: all serve it." in capsys.readouterr().err
    assert backend.resident_versions == ("tiny-1",)


async def test_wait_says_which_process_did_not_follow_and_why(
    env_file: Path, bot: tuple[App, Unloadable], capsys: pytest.CaptureFixture[str]
) -> None:
    app, backend = bot
    backend.missing.add("better")
    code = await gpt2bot(env_file, "models", "use", "better", "--wait", "--timeout", "20")
    err = capsys.readouterr().err
    assert code == 1 and backend.model_version == "tiny-1"  # it keeps serving what it has
    assert f"not followed: {socket.gethostname()}:" in err
    assert "cannot load better: /models/better is missing; serving tiny-1 meanwhile" in err
    state = app.follower.state
    assert (state.served, state.active, state.matches) == ("tiny-1", "better", False)
    ready = await readiness(app)  # still ready: it serves, and says what it serves instead
    assert ready.ready and ready.model["served"] == "tiny-1" and not ready.model["matches"]
    assert ready.checks["model"].startswith("ok: tiny-1, not the database's better: cannot load")
    scrape = (await asyncio.to_thread(app.metrics.exposition)).decode()
    assert "gpt2bot_follow_failing 1.0" in scrape
    assert 'gpt2bot_database_model_info{version="better"} 1.0' in scrape
