"""A Discord shard process beside two web processes, real `gpt2bot run` processes on one
database (a SQLite file; PostgreSQL too when TEST_DATABASE_URL names a server): a `gpt2bot
models use --wait` from a shell returns once all three serve it, `gpt2bot status` shows each
(the Discord one with its shards), a rollback from one web process's dashboard is followed by
the others within the bound, and a generation on each records the version it served."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from storage import Database, GenerationRepository
from tests.discord.fake_discord import FakeDiscord
from tests.discord.test_generate import finished
from tests.fleet import (
    ADMIN_TOKEN,
    FOLLOW_BOUND_S,
    START_TIMEOUT_S,
    Bot,
    fresh_postgres,
    gpt2bot,
    install,
    ready,
    serves,
    start_process,
    start_web,
    stop,
)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_a_discord_shard_and_two_web_processes_follow_the_shell_and_a_dashboard(
    fake: FakeDiscord, tmp_path: Path, database: str
) -> None:
    if database == "postgresql" and not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("TEST_DATABASE_URL not set")
    env = install(tmp_path, fresh_postgres() if database == "postgresql" else None)
    discord_env = {
        **env,
        "DISCORD_TOKEN": fake.token,
        "DISCORD_API_BASE": f"http://127.0.0.1:{fake.port}",
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        "DISCORD_GUILD_IDS": str(fake.guild_id),
        "DISCORD_EDIT_INTERVAL_SECONDS": "0.2",
        "DISCORD_SHARDS": "0/1",
    }
    bots = [
        await start_process(discord_env, tmp_path, "discord", "--platform", "discord"),
        await start_web(env, tmp_path, "web1"),
        await start_web(env, tmp_path, "web2"),
    ]
    shard, one, two = bots
    try:
        await asyncio.gather(
            fake.wait_for(lambda: fake.identified, START_TIMEOUT_S, "the shard to connect"),
            ready(one),
            ready(two),
        )
        # a promotion from the shell: --wait returns once every process serves it
        code, _, err = await gpt2bot(env, tmp_path, "models", "use", "v2", "--force", "--wait")
        assert code == 0, err + shard.log.read_text()[-2000:]
        assert "3 live processes: all serve it." in err
        seen = await fleet_status(env, tmp_path)
        assert sorted(seen) == [("discord", "0/1", "v2"), ("web", "", "v2"), ("web", "", "v2")]
        await generate_on_each(fake, one, two, "v2")

        # a rollback from one web process's dashboard: the others follow within the bound
        assert (await one.post("/admin/api/login", {"token": ADMIN_TOKEN})).status == 200
        back = await one.post("/admin/api/models/rollback", {})
        assert back.status == 200, await back.text()
        assert await serves(two, "v1") < FOLLOW_BOUND_S
        deadline = asyncio.get_running_loop().time() + FOLLOW_BOUND_S
        while ("discord", "0/1", "v1") not in await fleet_status(env, tmp_path):
            assert asyncio.get_running_loop().time() < deadline, shard.log.read_text()[-2000:]
            await asyncio.sleep(0.2)
        await generate_on_each(fake, one, two, "v1")
    finally:
        await stop(bots)
    db = Database(env["DATABASE_URL"])
    try:
        served = sorted((g.platform, g.model_version) for g in GenerationRepository(db).iter_all())
    finally:
        db.dispose()
    each = [("discord", version) for version in ("v1", "v2")]
    assert served == sorted(each + [("web", version) for version in ("v1", "v2")] * 2)


async def fleet_status(env: dict[str, str], cwd: Path) -> list[tuple[str, str, str]]:
    """(platform, shards, served version) of each live process, as `gpt2bot status` says."""
    code, out, err = await gpt2bot(env, cwd, "status", "--json")
    assert code == 0, err
    processes = json.loads(out)["processes"]
    return [(p["platform"], p["shards"], p["served_version"]) for p in processes]


async def generate_on_each(fake: FakeDiscord, one: Bot, two: Bot, version: str) -> None:
    """A `/generate` on Discord and a generation on each web process, all by `version`."""
    interaction = await fake.slash("generate", {"prompt": "The model", "max_new_tokens": 3})
    assert f"model {version}" in (await finished(fake, interaction)).content
    for web in (one, two):
        assert (await web.generate("Training data"))["model_version"] == version
