"""Operator mistakes that only show when connecting (the database, MODEL_DIR, a port), as a
real `gpt2bot` process meets them: one line naming the setting and the fix, exit status 2, no
traceback, in `gpt2bot run` and the one-shot commands."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

GPT2BOT = Path(sys.executable).with_name("gpt2bot")
REPOSITORY = Path(__file__).resolve().parents[2]  # this checkout's code, whatever is installed
SETTING = 2  # the exit status of a bad setting


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield int(other.getsockname()[1])


def gpt2bot(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SLACK_"))}
    env = {
        **{k: v for k, v in inherited.items() if not k.startswith(("HEALTH_", "DATABASE_"))},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'gpt2bot.db'}",
        "MODEL_DIR": str(tmp_path / "models"),
        "BASE_MODEL": "bootstrap",
        "DEVICE": "cpu",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPOSITORY),
        **settings,
    }
    return subprocess.run(
        [str(GPT2BOT), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The process's only line of stderr, after checking it stopped as a setting error does."""
    assert done.returncode == SETTING, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


ONE_SHOT = [
    ("models",),
    ("models", "use", "v2"),
    ("generate", "hi"),
    ("export",),
    ("train",),
    ("ab", "status"),
    ("review",),
    ("demo",),
]


@pytest.mark.parametrize("command", [*ONE_SHOT, ("run", "--platform", "web", "--port", "0")])
def test_an_unreachable_database_server_is_one_line_in_every_command(tmp_path, command):
    port = closed_port()
    url = f"postgresql+psycopg://gpt2bot:secret@127.0.0.1:{port}/gpt2bot"
    line = one_line(gpt2bot(tmp_path, *command, DATABASE_URL=url))
    assert line == (
        f"gpt2bot: setting DATABASE_URL: cannot connect to the database server at "
        f"127.0.0.1:{port} (Connection refused). Start the database server, or fix the host "
        "and port in the URL."
    )
    assert "secret" not in line


@pytest.mark.parametrize("command", [("run", "--platform", "web"), ("backup", "--out", "b.db")])
def test_an_unknown_scheme_and_a_missing_driver_are_one_line(tmp_path, command):
    unknown = one_line(gpt2bot(tmp_path, *command, DATABASE_URL="nonsense://"))
    assert unknown.startswith(
        "gpt2bot: setting DATABASE_URL: 'nonsense' is not a database SQLAlchemy knows. Use e.g. "
    )
    missing = one_line(gpt2bot(tmp_path, *command, DATABASE_URL="mysql://u:p@127.0.0.1/db"))
    assert missing == (
        "gpt2bot: setting DATABASE_URL: mysql:// needs the Python driver MySQLdb, which is not "
        "installed. Install mysqlclient (pip install mysqlclient); gpt2bot is tested on SQLite "
        "and PostgreSQL."
    )


def test_a_model_dir_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    folder = tmp_path / "a-file" / "models"
    line = one_line(gpt2bot(tmp_path, "generate", "hi", MODEL_DIR=str(folder)))
    assert line == (
        f"gpt2bot: setting MODEL_DIR: {folder} cannot be written (Not a directory). Point it at "
        "a folder this user can write (model versions and training runs are saved there), or "
        "fix its permissions."
    )


def test_a_web_port_or_health_port_in_use_is_one_line(tmp_path, held_port):
    web = one_line(gpt2bot(tmp_path, "run", "--platform", "web", "--port", str(held_port)))
    assert web == (
        f"gpt2bot: option --port: cannot listen on 127.0.0.1:{held_port} (Address already in "
        "use). Stop what uses it, or choose another port with --port (and --host)."
    )
    health = one_line(
        gpt2bot(tmp_path, "run", "--platform", "web", "--port", "0", HEALTH_PORT=str(held_port))
    )
    assert health == (
        f"gpt2bot: setting HEALTH_PORT: cannot listen on 127.0.0.1:{held_port} (Address already "
        "in use). Stop what uses it, or choose another port with HEALTH_PORT (and HEALTH_HOST)."
    )
