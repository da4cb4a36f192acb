"""`/generate`: ack at once, post the answer, edit it in place while it streams."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bot.app import App
from bot.platforms.slack import SlackPlatform
from bot.platforms.slack.chat import SHUTTING_DOWN
from model.backends.fake import ScriptedBackend
from storage import GenerationRepository
from tests.slack.conftest import EDIT_INTERVAL_S, WORDS, SignedClient
from tests.slack.fake_slack import FakeSlack

FINAL = "".join(WORDS)


def finished_messages(fake: FakeSlack) -> list[dict]:
    return [m for m in fake.messages.values() if "#1 ·" in m["text"]]


async def test_slash_command_acks_then_streams_into_one_message(
    slack: SignedClient, fake_slack: FakeSlack, backend: ScriptedBackend, app: App
) -> None:
    backend.delay_s = 0.08  # ten words in ~0.8 s: several throttled edits
    status, body = await slack.command("/generate", "temperature=0.5 seed=3 Once upon a time")

    assert status == 200 and body == ""  # the ack: Slack shows nothing extra
    assert not finished_messages(fake_slack)  # answered before the generation finished

    await fake_slack.wait_for(lambda: finished_messages(fake_slack))
    posts = fake_slack.called("chat.postMessage")
    assert len(posts) == 1 and posts[0]["channel"] == "C1"
    (message,) = fake_slack.messages.values()
    assert f"*Once upon a time*{FINAL}" in message["text"]
    assert "<@U1> asked with `temperature=0.5 seed=3`" in message["text"]
    assert "seed 3" in message["text"] and ":+1:" in message["text"]

    updates = fake_slack.called("chat.update")
    streaming = [u for u in updates if u["text"].endswith(" …")]
    assert streaming, "the answer was not shown while it was written"
    assert all(u["ts"] == message["ts"] for u in updates)  # edited in place
    # Throttled: ~0.8 s of streaming at one edit per 0.2 s, plus the final edit.
    assert len(updates) <= 0.8 / EDIT_INTERVAL_S + 3

    generation = GenerationRepository(app.db).get(1)
    assert generation.platform == "slack" and generation.user_id == "U1"
    assert generation.channel_id == "C1" and generation.guild_id == "T0001"
    assert generation.params["temperature"] == 0.5 and generation.seed == 3
    assert generation.message_id == f"C1:{message['ts']}"
    await fake_slack.wait_for(lambda: len(fake_slack.called("reactions.add")) == 4)
    assert [r["name"] for r in fake_slack.called("reactions.add")] == [
        "+1",
        "-1",
        "repeat",
        "fast_forward",
    ]


async def test_each_sample_gets_its_own_message(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    await slack.command("/generate", "samples=2 max_new_tokens=3 Hello")
    await fake_slack.wait_for(lambda: len(fake_slack.called("reactions.add")) == 8)
    texts = sorted(m["text"] for m in fake_slack.messages.values())
    assert len(texts) == 2
    assert "#1 ·" in texts[0] and "#2 ·" in texts[1]
    records = [GenerationRepository(app.db).get(i) for i in (1, 2)]
    assert len({r.message_id for r in records}) == 2


async def test_unknown_option_is_refused_in_the_ack(
    slack: SignedClient, fake_slack: FakeSlack
) -> None:
    status, body = await slack.command("/generate", "temprature=1 Once upon a time")
    assert status == 200  # the ack's body is shown to the user alone
    assert "Unknown option `temprature`" in body and "temperature" in body
    assert not fake_slack.called("chat.postMessage")


async def test_out_of_range_value_is_answered_privately(
    slack: SignedClient, fake_slack: FakeSlack
) -> None:
    await slack.command("/generate", "temperature=9 Once upon a time")
    response = await fake_slack.wait_for(lambda: fake_slack.responses)
    assert "temperature must be a number from 0 to 2" in response[0]["text"]
    assert response[0]["response_type"] == "ephemeral"
    assert not fake_slack.called("chat.postMessage")


async def test_empty_command_shows_usage(slack: SignedClient) -> None:
    status, body = await slack.command("/generate", "   ")
    assert status == 200 and "Usage: `/generate" in body


async def test_busy_backend_says_when_to_retry(
    slack: SignedClient, fake_slack: FakeSlack, backend: ScriptedBackend
) -> None:
    backend.busy_retry_s = 5
    await slack.command("/generate", "Once upon a time")
    response = await fake_slack.wait_for(lambda: fake_slack.responses)
    assert "retry in 5 seconds" in response[0]["text"]


async def test_channel_without_the_bot_gets_invite_hint(
    slack: SignedClient, fake_slack: FakeSlack
) -> None:
    fake_slack.closed_channels.add("C1")
    await slack.command("/generate", "Once upon a time")
    response = await fake_slack.wait_for(lambda: fake_slack.responses)
    assert "/invite @gpt2bot" in response[0]["text"]


async def test_rate_limited_post_is_retried_after_retry_after(
    slack: SignedClient, fake_slack: FakeSlack
) -> None:
    fake_slack.rate_limited["chat.postMessage"] = 1
    await slack.command("/generate", "max_new_tokens=2 Once upon a time")
    await fake_slack.wait_for(lambda: finished_messages(fake_slack))
    assert len(fake_slack.called("chat.postMessage")) == 2  # the 429, then the retry
    assert len(fake_slack.messages) == 1


async def test_stopping_while_the_first_post_is_in_flight_leaves_one_message(
    slack: SignedClient, fake_slack: FakeSlack, backend: ScriptedBackend, platform: SlackPlatform
) -> None:
    fake_slack.slow["chat.postMessage"] = 1.0  # Slack still answering the first post
    backend.delay_s = 0.5
    await slack.command("/generate", "Once upon a time")
    await fake_slack.wait_for(lambda: fake_slack.called("chat.postMessage"))

    await platform.close()

    (message,) = fake_slack.messages.values()  # the notice edits the post; no second one
    assert message["text"].endswith(SHUTTING_DOWN)
    assert len(fake_slack.called("chat.postMessage")) == 1


async def test_stopping_the_bot_tells_readers_of_unfinished_answers(
    slack: SignedClient, fake_slack: FakeSlack, backend: ScriptedBackend, platform: SlackPlatform
) -> None:
    backend.delay_s = 0.5  # ten words: five seconds, far longer than the test waits
    await slack.command("/generate", "Once upon a time")
    # the answer is under way once its first words were edited in (the post has its ts)
    await fake_slack.wait_for(lambda: fake_slack.called("chat.update"))

    await platform.close()

    (message,) = fake_slack.messages.values()
    assert message["text"].endswith(SHUTTING_DOWN)
    await asyncio.sleep(0.6)  # the generation was cancelled: no further edits arrive
    assert message["text"].endswith(SHUTTING_DOWN)


async def test_a_rate_limited_progress_edit_is_skipped_not_fatal(
    slack: SignedClient, fake_slack: FakeSlack, backend: ScriptedBackend
) -> None:
    backend.delay_s = 0.08
    fake_slack.rate_limited["chat.update"] = 4  # more 429s than the client retries (3)
    await slack.command("/generate", "Once upon a time")
    await fake_slack.wait_for(lambda: finished_messages(fake_slack))
    (message,) = fake_slack.messages.values()
    assert f"*Once upon a time*{FINAL}" in message["text"]


async def test_the_cooldown_applies_on_slack(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    app.chat.config = replace(app.chat.config, cooldown_s=60.0)
    await slack.command("/generate", "max_new_tokens=2 First")
    await fake_slack.wait_for(lambda: fake_slack.called("chat.postMessage"))
    await slack.command("/generate", "max_new_tokens=2 Second")
    response = await fake_slack.wait_for(lambda: fake_slack.responses)
    assert "Slow down a little: you can ask again in" in response[-1]["text"]
