"""Talking to the bot in Slack messages, through the real slack-bolt app and the fake Web API:
a mention generates, an output's thread is its story thread (each reply there continues the
story, in order), a workspace's prompt template, and the refusals."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from bot.app import App
from storage import GenerationRecord, GenerationRepository
from tests.slack.conftest import ADMIN, SignedClient
from tests.slack.fake_slack import BOT_USER_ID, FakeSlack


def generations(app: App) -> list[GenerationRecord]:
    return list(GenerationRepository(app.db).iter_all())


def finished(fake: FakeSlack, count: int) -> bool:
    """`count` answers carry their footer."""
    return sum("_#" in m["text"] for m in fake.messages.values()) >= count


async def say(
    slack: SignedClient,
    text: str,
    user: str = "U1",
    thread_ts: str | None = None,
    mention: bool = False,
) -> str:
    """A member's message as Slack sends it: `message`, plus `app_mention` when it mentions
    the bot (both, as Slack does)."""
    ts = f"{time.time():.6f}"
    event: dict[str, Any] = {
        "type": "message",
        "channel": "C1",
        "user": user,
        "text": f"<@{BOT_USER_ID}> {text}" if mention else text,
        "ts": ts,
        "event_ts": ts,
        "channel_type": "channel",
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    assert (await slack.event(event))[0] == 200
    if mention:
        assert (await slack.event({**event, "type": "app_mention"}))[0] == 200
    return ts


async def first_answer(slack: SignedClient, fake: FakeSlack, text: str) -> str:
    await slack.command("/generate", f"max_new_tokens=4 {text}")
    await fake.wait_for(lambda: finished(fake, 1))
    [(_, ts)] = [key for key, m in fake.messages.items() if "#1 ·" in m["text"]]
    return ts


async def test_a_mention_generates_once(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    await say(slack, "just talking")  # not for the bot
    await say(slack, "Write about rivers", mention=True)
    await fake_slack.wait_for(lambda: finished(fake_slack, 1))

    [generation] = generations(app)
    assert generation.prompt == "Write about rivers" and generation.kind == "new"
    [message] = [m for m in fake_slack.messages.values() if "_#1" in m["text"]]
    assert message["text"].startswith("<@U1> mentioned me:\n*Write about rivers*")


async def test_replies_in_an_output_s_thread_continue_the_story_in_order(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    root = await first_answer(slack, fake_slack, "Once upon a time")
    await say(slack, "A fox appeared.", user="U2", thread_ts=root)
    await say(slack, "It was hungry.", user="U3", thread_ts=root, mention=True)
    await fake_slack.wait_for(lambda: finished(fake_slack, 3))

    start, one, two = generations(app)
    assert (one.kind, one.parent_id, one.user_id) == ("reply", start.id, "U2")
    assert two.parent_id == one.id and two.conversation_id == start.conversation_id
    assert one.channel_id == two.channel_id == f"C1:{root}"
    assert two.prompt == one.prompt + one.output + "\nIt was hungry."
    posted = [m for m in fake_slack.messages.values() if m.get("thread_ts") == root]
    assert len(posted) == 2 and all("wrote the next turn" in m["text"] for m in posted)


async def test_a_thread_that_is_not_an_output_s_is_ignored(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    member_message = await say(slack, "a member's own topic")
    await say(slack, "a reply among members", user="U2", thread_ts=member_message)
    await first_answer(slack, fake_slack, "Hello")  # something to wait for
    assert len(generations(app)) == 1


async def test_a_story_turn_during_the_cooldown_is_refused_privately(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    app.chat.config = replace(app.chat.config, cooldown_s=60.0)
    root = await first_answer(slack, fake_slack, "Dawn")
    await say(slack, "Birds sang.", thread_ts=root)  # U1 asked a moment ago
    told = await fake_slack.wait_for(lambda: fake_slack.called("chat.postEphemeral"))
    assert "Slow down" in told[0]["text"] and told[0]["user"] == "U1"
    assert len(generations(app)) == 1


@pytest.mark.parametrize("admin_services", [pytest.param(None, id="real-services")])
async def test_a_workspace_template_applies_and_is_shown(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    await slack.command("/gpt2bot-admin", "server template Answer briefly", user=ADMIN)
    await slack.command("/gpt2bot-admin", "server template <#C1|general> Q: {prompt}\\nA:", ADMIN)
    await fake_slack.wait_for(lambda: len(fake_slack.responses) >= 2)
    refused, saved = (r["text"] for r in fake_slack.responses[:2])
    assert "{prompt} exactly once" in refused
    assert "prompt template: <#C1>: `Q: {prompt}\\nA:`" in saved

    await first_answer(slack, fake_slack, "Why is the sky blue?")
    [generation] = generations(app)
    assert generation.prompt == "Q: Why is the sky blue?\nA:"
    [message] = [m for m in fake_slack.messages.values() if "_#1" in m["text"]]
    assert "template `Q: {prompt}" in message["text"]
