"""Stopping the platform: in-flight generations are told, new requests refused, socket closed."""

from __future__ import annotations

import asyncio

from bot.platforms.discord import render
from model.backends.fake import ScriptedBackend
from tests.discord.test_generate import ephemeral_reply, finished


async def test_quick_generations_finish_during_shutdown(fake, start_bot):
    backend = ScriptedBackend(chunks=4, delay_s=0.1)  # about 0.4 s
    bot = await start_bot(backend, grace=5.0)
    interaction = await fake.slash("generate", {"prompt": "almost done"})
    await fake.wait_for(lambda: interaction.callback_type is not None, what="the deferral")

    await bot.stop()

    await finished(fake, interaction)
    assert len(bot.generations()) == 1 and backend.cancelled == []


async def test_slow_generations_are_stopped_with_a_message(fake, start_bot):
    backend = ScriptedBackend(chunks=100, delay_s=0.1)  # about 10 s
    bot = await start_bot(backend, grace=1.0)
    slow = await fake.slash("generate", {"prompt": "a long story"})
    await fake.wait_for(lambda: interaction_edits(fake, slow) >= 1, what="streaming to start")

    stopping = asyncio.ensure_future(bot.stop())
    await asyncio.sleep(0.2)
    late = await fake.slash("generate", {"prompt": "am I too late?"})
    assert (await ephemeral_reply(fake, late)).content == render.NOT_ACCEPTING
    await asyncio.wait_for(stopping, 10)

    assert (await ephemeral_reply(fake, slow)).content == render.SHUTTING_DOWN
    assert fake.messages[slow.original_id].deleted  # the half-written public answer is gone
    await fake.wait_for(lambda: backend.cancelled, what="the backend to stop the work")
    assert bot.generations() == []
    assert bot.task.done() and bot.task.exception() is None  # run() returned
    await fake.wait_for(lambda: fake._send is None, what="the gateway connection to close")


def interaction_edits(fake, interaction) -> int:
    if interaction.original_id is None:
        return 0
    return len(fake.messages[interaction.original_id].edits) - 1
