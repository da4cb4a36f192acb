"""DISCORD_SHARDS: AutoShardedClient with two shards against the fake gateway."""

from __future__ import annotations

import asyncio

import pytest

from bot.platforms.discord.config import check_shards, shard_options
from bot.platforms.discord.platform import ShardedGenerationClient
from bot.platforms.health import HealthTarget
from tests.discord.test_generate import finished

READY_TIMEOUT_S = 20  # discord.py waits ~2 s per shard for more servers before it is ready


async def test_two_shards_connect_and_serve_the_guild_on_its_shard(fake, start_bot):
    fake.recommended_shards = 2  # what Discord answers for DISCORD_SHARDS=auto
    bot = await start_bot(shards="auto")
    client = bot.platform.client
    assert isinstance(client, ShardedGenerationClient)
    await fake.wait_for(lambda: fake.identified == 2, what="both shards to identify")
    assert sorted(fake.shards_identified) == [[0, 2], [1, 2]]  # type: ignore[type-var]
    await asyncio.wait_for(client.wait_until_ready(), READY_TIMEOUT_S)
    assert sorted(client.shards) == [0, 1] and client.shard_count == 2
    state = await HealthTarget(bot.app, bot.platform).readiness()
    assert state.ready and state.checks["discord"] == "ok: connected"

    interaction = await fake.slash("generate", {"prompt": "Sharded hello"})
    last = await finished(fake, interaction)
    assert "Sharded hello" in last.content
    (stored,) = bot.generations()
    assert stored.guild_id == str(fake.guild_id)


async def test_shards_of_several_processes(fake, start_bot):
    bot = await start_bot(shards="1/2")  # the other process runs shard 0
    client = bot.platform.client
    await fake.wait_for(lambda: fake.identified == 1, what="shard 1 to identify")
    assert fake.shards_identified == [[1, 2]]
    assert client.shard_ids == [1] and client.shard_count == 2


@pytest.mark.parametrize(
    ("value", "options"),
    [
        ("auto", {}),
        ("4", {"shard_count": 4}),
        ("0,1/4", {"shard_count": 4, "shard_ids": [0, 1]}),
        ("2-3/4", {"shard_count": 4, "shard_ids": [2, 3]}),
        (None, None),
    ],
)
def test_shard_settings(value, options):
    assert shard_options(value) == options


@pytest.mark.parametrize("value", ["0", "many", "4/4", "1-/2", "/2", "3,x/4"])
def test_bad_shard_settings_say_what_to_write(value):
    with pytest.raises(ValueError) as caught:
        check_shards(value)
    problem, fix = caught.value.args
    assert repr(value) in problem and "0,1/4" in fix
