"""/mydata, /history and /conversation: members see and remove their own data."""

from __future__ import annotations

import json

from bot.export import write_export
from model.backends.fake import ScriptedBackend
from storage import CuratedSampleRepository, GenerationRepository, MemberDataRepository
from tests.discord.fake_discord import FakeDiscord
from tests.discord.fake_records import Interaction, Message
from tests.discord.test_generate import ephemeral_reply, finished


async def reply_text(fake: FakeDiscord, interaction: Interaction) -> str:
    """Every ephemeral page of an answer, joined."""

    def pages() -> list[Message] | None:
        ids = [interaction.original_id, *interaction.followup_ids]
        shown = [fake.messages[i] for i in ids if i is not None]
        return shown if shown and all(m.ephemeral and m.content for m in shown) else None

    return "\n".join(m.content for m in await fake.wait_for(pages, what="the answer"))


async def generate_and_rate(fake: FakeDiscord, bot, prompt: str) -> int:
    done = await finished(fake, await fake.slash("generate", {"prompt": prompt}))
    record = bot.generations()[-1]
    await fake.react(done.id, "👍", fake.bob)
    await fake.react(done.id, "👍", fake.boss)
    await fake.wait_for(lambda: len(bot.generations()[-1].ratings) == 2 or None, what="ratings")
    return record.id


async def test_mydata_export_then_delete_leaves_none_of_their_text(fake, start_bot, tmp_path):
    bot = await start_bot(real_admin=True)
    secret = "My very own secret prompt"
    generation_id = await generate_and_rate(fake, bot, secret)
    other = await finished(
        fake, await fake.slash("generate", {"prompt": "Bob asks"}, member=fake.bob)
    )
    await fake.react(other.id, "👎", fake.alice)  # alice's rating of someone else's output
    await fake.wait_for(lambda: bot.generations()[-1].ratings or None, what="alice's rating")
    mine = next(m for m in fake.messages.values() if secret in m.content and m.reactions)
    await fake.react(mine.id, "⏩", fake.bob)  # bob continues alice's text
    await fake.wait_for(lambda: len(bot.generations()) == 3 or None, what="bob's continuation")
    samples = CuratedSampleRepository(bot.app.db)
    added, _ = samples.sync_from_ratings(min_net_score=2, min_raters=2)
    assert added == 1 and secret in samples.active()[0].text

    exported = await fake.slash("mydata export")
    [(name, data)] = (await ephemeral_reply(fake, exported)).files
    rows = [json.loads(line) for line in data.decode().splitlines()]
    assert name == "gpt2bot-mydata.jsonl"
    assert [r["type"] for r in rows] == ["generation", "rating"]  # bob's ⏩ is bob's
    assert rows[0]["prompt"] == secret and rows[1]["emoji"] == "👎"

    warned = await ephemeral_reply(fake, await fake.slash("mydata delete"))
    assert "cannot be undone" in warned.content and "confirm:True" in warned.content
    assert secret in GenerationRepository(bot.app.db).get(generation_id).prompt  # not yet

    deleted = await fake.slash("mydata delete", {"confirm": True})
    told = await reply_text(fake, deleted)
    assert "1 generation(s), 1 rating(s) and 1 training sample(s)" in told
    assert "already trained are not retrained" in told

    record = GenerationRepository(bot.app.db).get(generation_id)
    assert (record.prompt, record.output, record.redacted) == ("", "", True)
    continuation = bot.generations()[-1]
    assert continuation.user_id == str(fake.bob.id) and continuation.prompt == ""
    assert continuation.output  # bob's own words stay
    assert samples.recent(50, active_only=False) == []
    assert samples.sync_from_ratings(min_net_score=2, min_raters=2) == (0, 0)  # stays out
    everything = tmp_path / "export.jsonl"
    with everything.open("w") as handle:
        write_export(GenerationRepository(bot.app.db).iter_all(), handle, "jsonl")
    dump = everything.read_text()
    assert secret not in dump and f'"rater_id": "{fake.alice.id}"' not in dump
    assert MemberDataRepository(bot.app.db).deleted("discord", str(fake.alice.id))
    actions = [e["action"] for e in bot.app.gate.audit.recent()]
    assert actions[:2] == ["mydata delete", "mydata export"]


async def test_history_and_a_conversation_read_back_in_order(fake, start_bot):
    bot = await start_bot()
    first = await finished(fake, await fake.slash("generate", {"prompt": "Once upon a time"}))
    await fake.react(first.id, "⏩", fake.alice)
    await fake.wait_for(lambda: len(bot.generations()) == 2 or None, what="the continuation")

    history = await reply_text(fake, await fake.slash("history"))
    root, child = bot.generations()
    assert history.index(f"`#{child.id}`") < history.index(f"`#{root.id}`")  # newest first
    assert f"conversation `{root.conversation_id}`" in history

    shown = await reply_text(fake, await fake.slash("conversation", {"id": root.conversation_id}))
    lines = shown.splitlines()
    assert lines[0] == f"**Conversation `{root.conversation_id}`**"
    assert lines[1].startswith(f"• `#{root.id}`") and "**Once upon a time**" in lines[1]
    assert lines[2].startswith(f"  ↳ ⏩ `#{child.id}`")

    elsewhere = await fake.slash(
        "conversation",
        {"id": root.conversation_id},
        member=fake.bob,
        guild_id=fake.other_guild_id,
    )
    assert "no conversation" in (await ephemeral_reply(fake, elsewhere)).content


async def test_a_member_stops_their_own_generation_with_a_reaction(fake, start_bot):
    backend = ScriptedBackend(
        text=lambda request, sample: " and the story goes on" * 40, chunks=160, delay_s=0.05
    )  # about 8 s of streaming
    bot = await start_bot(backend)
    interaction = await fake.slash("generate", {"prompt": "A long story"})
    streaming = await fake.wait_for(
        lambda: (
            interaction.original_id
            and "story" in fake.messages[interaction.original_id].content
            and fake.messages[interaction.original_id]
        ),
        what="the answer streaming",
    )

    shown = len(streaming.content)
    await fake.react(streaming.id, "⏹️", fake.bob)  # not bob's generation: it streams on
    await fake.wait_for(
        lambda: len(fake.messages[streaming.id].content) > shown, what="more text after bob's ⏹️"
    )
    assert backend.cancelled == []
    await fake.react(streaming.id, "⏹️", fake.alice)

    stopped = await ephemeral_reply(fake, interaction)
    assert stopped.content == "⏹️ Stopped, as you asked."
    assert len(backend.cancelled) == 1 and bot.generations() == []
