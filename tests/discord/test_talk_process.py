"""Talking to the real `gpt2bot run --platform discord` on the fake Discord, the way people talk
in chat: a reply to an output is continued as a reply and the export links it to its parent, a
mention generates, a story thread's messages are continued in order, and a channel's prompt
template is in the exported prompt of a generation made there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.discord.fake_discord import FakeDiscord
from tests.discord.process import START_TIMEOUT_S, environment, save_tiny_model, stop
from tests.discord.process import start as start_bot
from tests.discord.test_generate import finished
from tests.discord.test_members import reply_text
from tests.discord.test_talk import answer_to
from tests.fleet import gpt2bot

TEMPLATE = "Story: {prompt}"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("models") / "talk-1")


@pytest.mark.slow
async def test_replies_mentions_story_threads_and_templates_on_the_real_bot(
    fake: FakeDiscord, tmp_path: Path, tiny_model: Path
) -> None:
    env = environment(fake, tmp_path, tiny_model, fake.token)
    env.update(OMP_NUM_THREADS="1", DISCORD_MESSAGE_CONTENT="true", COOLDOWN_SECONDS="0")
    # The random tiny model's text reads as offensive to the classifier now and then (8 of 300
    # samples at the default 0.8), and a withheld turn would change the story's lineage below;
    # the blocklist still applies.
    env.update(MODERATION_THRESHOLD="1")
    process = await start_bot(env, tmp_path)
    try:
        await fake.wait_for(lambda: fake.identified, START_TIMEOUT_S, "the bot process to connect")
        saved = await fake.slash(
            "admin server template",
            {"text": TEMPLATE, "channel": f"<#{fake.channel_id}>"},
            fake.boss,
        )
        assert "Saved." in await reply_text(fake, saved)

        # /generate in the channel: the template applies and the footer says so
        options = {"prompt": "The model writes", "max_new_tokens": 8, "seed": 1}
        output = await finished(fake, await fake.slash("generate", options))
        assert "template `Story: {prompt}`" in output.content

        # a reply continues it, as a reply
        reply = await fake.say("A small model", member=fake.bob, reply_to=output.id)
        continued = await answer_to(fake, reply)
        assert continued.reference_id == reply.id

        # a mention generates
        mention = await fake.say("Training data", mention=True)
        await answer_to(fake, mention)

        # a story thread: messages continued in the order they were written
        story = {"prompt": "A sentence", "max_new_tokens": 6, "thread": True}
        opened = await finished(fake, await fake.slash("generate", story))
        thread_id = await fake.wait_for(
            lambda: opened.id if opened.id in fake.threads else None, what="the story thread"
        )
        turns = [
            await fake.say("First turn.", channel_id=thread_id),
            await fake.say("Second turn.", member=fake.bob, channel_id=thread_id),
        ]
        for turn in turns:
            await answer_to(fake, turn)
    except BaseException as failure:  # the bot's own words say why
        failure.add_note(f"the bot's log, last part:\n{(await stop(process))[-6000:]}")
        raise
    log = await stop(process)
    assert "Traceback" not in log, log[-3000:]

    code, out, err = await gpt2bot(env, tmp_path, "export", "--format", "jsonl")
    assert code == 0, err
    rows = {row["id"]: row for row in map(json.loads, out.splitlines())}
    first, child, mentioned, opening, one, two = rows.values()
    assert first["template"] == TEMPLATE and first["prompt"] == "Story: The model writes"
    assert (child["kind"], child["parent_id"]) == ("reply", first["id"])
    assert child["conversation_id"] == first["conversation_id"]
    assert child["prompt"] == first["prompt"] + first["output"] + "\nA small model"
    assert child["message_id"] == str(continued.id)
    assert mentioned["prompt"] == "Story: Training data" and mentioned["kind"] == "new"
    assert (one["parent_id"], two["parent_id"]) == (opening["id"], one["id"])
    assert one["channel_id"] == two["channel_id"] == str(thread_id)
    assert one["prompt"].endswith("\nFirst turn.") and two["prompt"].endswith("\nSecond turn.")
    assert two["prompt"].startswith(one["prompt"] + one["output"])
