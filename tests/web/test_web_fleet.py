"""A fleet of real `gpt2bot run --platform web` processes on one SQLite file: a `gpt2bot models
use` from a shell and a rollback from one process's dashboard are served by every process
within the bound, a generation on each records that version, and a process killed with
`kill -9` neither stops the others nor keeps a `--wait` from returning; started again, it
serves the active version.

Each process imports torch and loads a tiny GPT-2 (two cores: `OMP_NUM_THREADS=1` each)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import Database, GenerationRepository
from tests.fleet import (
    ADMIN_TOKEN,
    FOLLOW_BOUND_S,
    Bot,
    gpt2bot,
    install,
    ready,
    serves,
    start_web,
    stop,
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return install(tmp_path)


@pytest.fixture
async def fleet(env: dict[str, str], tmp_path: Path) -> AsyncIterator[list[Bot]]:
    bots = [await start_web(env, tmp_path, f"bot{i}") for i in range(2)]
    try:
        await asyncio.gather(*(ready(bot) for bot in bots))
        yield bots
    finally:
        await stop(bots)


async def test_two_processes_follow_the_shell_and_a_dashboard_and_survive_a_kill(
    fleet: list[Bot], env: dict[str, str], tmp_path: Path
) -> None:
    one, two = fleet
    for bot in fleet:
        model = (await bot.readyz())["model"]
        assert (model["served"], model["database"], model["matches"]) == ("v1", "v1", True)

    # a promotion from the shell: --wait returns once both processes serve it
    code, _, err = await gpt2bot(env, tmp_path, "models", "use", "v2", "--force", "--wait")
    assert code == 0, err
    assert "The database now names v2 the active version. 2 live processes: all serve it." in err
    for bot in fleet:
        assert (await bot.readyz())["model"]["served"] == "v2"
        assert (await bot.generate("The model"))["model_version"] == "v2"

    # a rollback from one process's dashboard: the other follows within the bound
    assert (await one.post("/admin/api/login", {"token": ADMIN_TOKEN})).status == 200
    back = await one.post("/admin/api/models/rollback", {})
    assert back.status == 200, await back.text()
    assert (await back.json())["message"].startswith("Rolled back. Now serving v1 here")
    assert await serves(two, "v1") < FOLLOW_BOUND_S
    for bot in fleet:
        assert (await bot.generate("Training data"))["model_version"] == "v1"

    # kill -9 one: the other goes on following, and --wait does not wait for the dead one
    one.process.send_signal(signal.SIGKILL)
    await one.process.wait()
    code, _, err = await gpt2bot(env, tmp_path, "models", "use", "v2", "--force", "--wait")
    assert code == 0, err
    assert (await two.generate("A small model"))["model_version"] == "v2"
    code, out, err = await gpt2bot(env, tmp_path, "status", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert [p["pid"] for p in status["processes"]] == [two.process.pid]

    # started again, it serves the active version
    again = await start_web(env, tmp_path, "bot0-again")
    fleet.append(again)
    await ready(again)
    assert (await again.generate("Attention"))["model_version"] == "v2"

    db = Database(env["DATABASE_URL"])  # every generation recorded the version served
    try:
        served = [g.model_version for g in GenerationRepository(db).iter_all()]
    finally:
        db.dispose()
    assert served == ["v2", "v2", "v1", "v1", "v2", "v2"]
