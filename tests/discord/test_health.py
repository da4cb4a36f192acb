"""/readyz tells whether the Discord bot is connected to the gateway."""

from __future__ import annotations

import asyncio

from bot.platforms.health import HealthTarget

READY_TIMEOUT_S = 20  # discord.py waits ~2 s for more servers before it calls itself ready


async def test_readiness_follows_the_gateway_connection(start_bot):
    bot = await start_bot()
    target = HealthTarget(bot.app, bot.platform)
    await asyncio.wait_for(bot.platform.client.wait_until_ready(), READY_TIMEOUT_S)
    state = await target.readiness()
    assert state.ready, state.checks
    assert state.checks["discord"] == "ok: connected"

    await bot.stop()
    state = await target.readiness()
    assert not state.ready and state.checks["discord"] == "not connected"
