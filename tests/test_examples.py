"""The example plugins (`examples/`) as an operator meets them: installed into gpt2bot's
environment (scripts/test installs them), found by name, and `gpt2bot run --platform
linechat` serving /generate and /admin model list with the real engine and database, then with
the parrot backend and the nolinks moderator in place of gpt2bot's own."""

from __future__ import annotations

import asyncio
import os
import signal
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from bot import plugins
from bot.settings import Settings
from tests.bot.test_cli_run import GPT2BOT
from tests.conftest import register_active
from tests.slack.test_run import START_TIMEOUT_S, free_port

EXAMPLES = {
    plugins.PLATFORM_GROUP: "linechat",
    plugins.BACKEND_GROUP: "parrot",
    plugins.MODERATOR_GROUP: "nolinks",
}
TOKEN = "an-admin-token-for-the-test"


def _installed(group: str, name: str) -> bool:
    return any(True for _ in entry_points(group=group, name=name))


needs_examples = pytest.mark.skipif(
    not all(_installed(group, name) for group, name in EXAMPLES.items()),
    reason="the example plugins are not installed: scripts/test installs them from examples/",
)


@needs_examples
def test_each_example_is_found_by_its_entry_point() -> None:
    for group, name in EXAMPLES.items():
        assert callable(plugins.load(group, name))
        assert name in plugins.available(group)


async def _connect(port: int, process: asyncio.subprocess.Process):
    for _ in range(START_TIMEOUT_S * 10):
        assert process.returncode is None, "gpt2bot run exited early"
        try:
            return await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            await asyncio.sleep(0.1)
    pytest.fail("linechat did not start listening")


async def _send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str) -> str:
    writer.write(f"{line}\n".encode())
    return await asyncio.wait_for(_answer(reader), timeout=60)


async def _answer(reader: asyncio.StreamReader) -> str:
    lines = []
    while (line := (await reader.readline()).decode()) != ".\n":
        assert line, "linechat closed the connection"
        lines.append(line)
    return "".join(lines)


async def _run_linechat(
    tmp_path: Path, settings: Settings, tiny_model_dir: Path, **env: str
) -> tuple[asyncio.subprocess.Process, int]:
    register_active(settings, tiny_model_dir)
    port = free_port()
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SLACK_"))},
        "DATABASE_URL": settings.storage.url,
        "MODEL_DIR": str(tmp_path / "models"),
        "DEVICE": "cpu",
        "LINECHAT_ADMIN_TOKEN": TOKEN,
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        str(GPT2BOT), "run", "--platform", "linechat", "--port", str(port),
        cwd=tmp_path, env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return process, port


async def _stop(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()


@needs_examples
@pytest.mark.slow
async def test_gpt2bot_runs_the_example_platform(
    tmp_path: Path, settings: Settings, tiny_model_dir: Path
) -> None:
    process, port = await _run_linechat(tmp_path, settings, tiny_model_dir)
    try:
        reader, writer = await _connect(port, process)
        assert "Hello guest-1" in await _answer(reader)
        answer = await _send(reader, writer, "/generate A language model")
        assert answer.rstrip().endswith("#1 (version tiny-1)")
        assert "only" in await _send(reader, writer, "/admin model list")  # not an owner yet
        assert await _send(reader, writer, f"/login {TOKEN}") == "You are an owner now.\n"
        listed = await _send(reader, writer, "/admin model list")
        assert listed.startswith("▶ tiny-1 active")
        writer.close()
    finally:
        await _stop(process)


@needs_examples
@pytest.mark.slow
async def test_the_three_examples_serve_together(
    tmp_path: Path, settings: Settings, tiny_model_dir: Path
) -> None:
    process, port = await _run_linechat(
        tmp_path, settings, tiny_model_dir, GENERATION_BACKEND="parrot", MODERATOR="nolinks"
    )
    try:
        reader, writer = await _connect(port, process)
        await _answer(reader)
        text, stored = (await _send(reader, writer, "/generate red green blue")).splitlines()
        assert set(text.split()) <= {"red", "green", "blue"} and len(text.split()) > 3
        assert stored == "#1 (version tiny-1)"  # parrot serves the version gpt2bot prepared
        refused = await _send(reader, writer, "/generate see https://spam.example now")
        assert (
            refused
            == "! I did not send that prompt: it contains a link. Rephrase it and try again.\n"
        )
        writer.close()
    finally:
        await _stop(process)
