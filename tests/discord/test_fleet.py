"""A Discord shard process beside a web process, real `gpt2bot run` processes on one database
(a SQLite file; PostgreSQL too when TEST_DATABASE_URL names a server): a `gpt2bot models use
--wait` from a shell returns once both serve it, `gpt2bot status` shows each (the Discord one
with its shards), and a `/generate` on Discord and a generation on the web record that
version."""

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
    START_TIMEOUT_S,
    fresh_postgres,
    gpt2bot,
    install,
    ready,
    start_process,
    start_web,
    stop,
)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_a_discord_shard_and_a_web_process_follow_the_shell(
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
        await start_web(env, tmp_path, "web"),
    ]
    shard, web = bots
    try:
        await asyncio.gather(
            fake.wait_for(lambda: fake.identified, START_TIMEOUT_S, "the shard to connect"),
            ready(web),
        )
        code, _, err = await gpt2bot(env, tmp_path, "models", "use", "v2", "--force", "--wait")
        assert code == 0, err + shard.log.read_text()[-2000:]
        assert "2 live processes: all serve it." in err

        code, out, err = await gpt2bot(env, tmp_path, "status", "--json")
        assert code == 0, err
        status = json.loads(out)
        seen = {p["platform"]: (p["shards"], p["served_version"]) for p in status["processes"]}
        assert seen == {"discord": ("0/1", "v2"), "web": ("", "v2")}

        interaction = await fake.slash("generate", {"prompt": "The model", "max_new_tokens": 3})
        answer = await finished(fake, interaction)
        assert "model v2" in answer.content
        assert (await web.generate("Training data"))["model_version"] == "v2"
    finally:
        await stop(bots)
    db = Database(env["DATABASE_URL"])
    try:
        served = {(g.platform, g.model_version) for g in GenerationRepository(db).iter_all()}
    finally:
        db.dispose()
    assert served == {("discord", "v2"), ("web", "v2")}
