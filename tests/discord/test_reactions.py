"""Reactions on outputs: ratings, 🔁 regenerate, ⏩ continue."""

from __future__ import annotations

import asyncio

from storage import GenerationRecord
from tests.discord.fake_discord import FakeDiscord
from tests.discord.fake_records import Message
from tests.discord.test_generate import finished


def ratings(bot, generation_id: int) -> dict[str, tuple[int, str]]:
    [record] = [g for g in bot.generations() if g.id == generation_id]
    return {r.rater_id: (r.score, r.emoji) for r in record.ratings}


async def generated(fake: FakeDiscord, prompt: str = "Once upon a time") -> Message:
    return await finished(fake, await fake.slash("generate", {"prompt": prompt, "seed": 1}))


async def test_rating_is_stored_replaced_and_removed(fake, start_bot):
    bot = await start_bot()
    message = await generated(fake)
    alice = str(fake.alice.id)

    await fake.react(message.id, "👍", fake.alice)
    await fake.wait_for(lambda: ratings(bot, 1) == {alice: (1, "👍")}, what="👍 stored")

    await fake.react(message.id, "👎", fake.alice)
    await fake.wait_for(lambda: ratings(bot, 1) == {alice: (-1, "👎")}, what="👎 replaced 👍")
    # the bot takes away the old 👍 so the message shows one rating; the REMOVE event that
    # Discord sends for it must not delete the new 👎
    await fake.wait_for(lambda: fake.calls_to("DELETE", f"/reactions/👍/{alice}"), what="👍 taken")
    await fake.wait_for(lambda: fake.alice.id not in message.reactions["👍"])
    await fake.react(message.id, "👍", fake.bob)
    await fake.wait_for(lambda: len(ratings(bot, 1)) == 2)
    assert ratings(bot, 1)[alice] == (-1, "👎")

    await fake.react(message.id, "👎", fake.alice, add=False)
    await fake.wait_for(lambda: alice not in ratings(bot, 1), what="rating removed")
    assert ratings(bot, 1) == {str(fake.bob.id): (1, "👍")}


async def test_own_reactions_and_other_messages_are_ignored(fake, start_bot):
    bot = await start_bot()
    message = await generated(fake)
    # the bot's own 👍 👎 🔁 ⏩ came back as gateway events (the fake echoes them like Discord)

    await fake.react(424242, "👍", fake.alice)  # somebody else's message
    await fake.react(message.id, "🎉", fake.alice)  # not a rating
    await fake.react(message.id, "👎", fake.bob)
    await fake.wait_for(lambda: ratings(bot, 1), what="bob's rating")
    await asyncio.sleep(0.3)  # time for a wrongly handled 🔁/⏩ to post something

    assert fake.channel_messages() == []
    assert ratings(bot, 1) == {str(fake.bob.id): (-1, "👎")}
    assert len(bot.generations()) == 1  # the bot's own 🔁 and ⏩ did not start anything


async def test_regenerate_makes_a_linked_sibling_with_a_new_seed(fake, start_bot, backend):
    bot = await start_bot()
    message = await generated(fake)

    await fake.react(message.id, "🔁", fake.bob)

    def second() -> GenerationRecord | None:
        rows = bot.generations()
        return rows[1] if len(rows) == 2 and rows[1].message_id else None

    retry = await fake.wait_for(second, what="the regenerated answer")
    first = bot.generations()[0]
    assert retry.kind == "regenerate" and retry.conversation_id == first.conversation_id
    assert retry.prompt == first.prompt and retry.params == first.params
    assert retry.seed != first.seed and retry.user_id == str(fake.bob.id)
    reply = fake.messages[int(retry.message_id)]
    assert reply.reference_id == message.id and reply.interaction_id is None
    assert reply.content.startswith("**Once upon a time** and then sample 0 with seed")
    assert f"#{retry.id} · model fake-1" in reply.content
    await fake.wait_for(lambda: len(reply.reactions) == 4, what="reactions on the new answer")


async def test_continue_writes_the_next_turn(fake, start_bot):
    bot = await start_bot()
    message = await generated(fake)

    await fake.react(message.id, "⏩", fake.alice)

    def child() -> GenerationRecord | None:
        rows = bot.generations()
        return rows[1] if len(rows) == 2 and rows[1].message_id else None

    turn = await fake.wait_for(child, what="the continuation")
    first = bot.generations()[0]
    assert turn.kind == "continue" and turn.parent_id == first.id
    assert turn.prompt == first.prompt + first.output
    reply = fake.messages[int(turn.message_id)]
    assert reply.content.startswith("… and then sample 0")  # the text so far is not repeated
    assert reply.reference_id == message.id


async def test_regenerate_when_busy_leaves_a_short_note(fake, start_bot, backend):
    bot = await start_bot()
    message = await generated(fake)
    backend.busy_retry_s = 9.0

    await fake.react(message.id, "🔁", fake.bob)

    note = await fake.wait_for(lambda: fake.channel_messages(), what="the busy note")
    assert (
        note[0].content
        == f"<@{fake.bob.id}> ⏳ The bot is busy right now: please retry in 9 seconds."
    )
    assert note[0].reference_id == message.id and note[0].allowed_mentions == [{"parse": []}]
    assert len(bot.generations()) == 1
