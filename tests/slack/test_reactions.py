"""Reactions on an answer: rate, change, remove; :repeat: and :fast_forward:."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import App
from bot.screening import HIDDEN_TEXT
from storage import GenerationRecord, GenerationRepository
from tests.slack.conftest import SignedClient, eventually
from tests.slack.fake_slack import BOT_USER_ID, FakeSlack


async def answer(slack: SignedClient, fake: FakeSlack, text: str = "Once upon a time") -> str:
    """Ask for an answer and return its message ts once it is finished."""
    await slack.command("/generate", f"max_new_tokens=4 {text}")
    await fake.wait_for(lambda: len(fake.called("reactions.add")) == 4)
    (ts,) = [ts for (_, ts), m in fake.messages.items() if "#1 ·" in m["text"]]
    return ts


def generation(app: App, generation_id: int = 1) -> GenerationRecord:
    return GenerationRepository(app.db).get(generation_id)


async def test_thumbs_up_is_stored_replaced_and_removed(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    ts = await answer(slack, fake_slack)

    assert (await slack.react("U2", "+1", ts))[0] == 200
    await eventually(lambda: generation(app).ratings)
    assert [(r.rater_id, r.score) for r in generation(app).ratings] == [("U2", 1)]

    await slack.react("U2", "-1::skin-tone-3", ts)  # a change of mind replaces the rating
    await eventually(lambda: generation(app).ratings[0].score == -1)
    assert len(generation(app).ratings) == 1

    await slack.react("U2", "+1", ts, removed=True)  # no longer the rating: nothing happens
    await slack.react("U3", "+1", ts)
    await eventually(lambda: len(generation(app).ratings) == 2)
    assert {(r.rater_id, r.score) for r in generation(app).ratings} == {("U2", -1), ("U3", 1)}

    await slack.react("U2", "-1", ts, removed=True)
    await eventually(lambda: len(generation(app).ratings) == 1)
    assert [(r.rater_id, r.score) for r in generation(app).ratings] == [("U3", 1)]


async def test_the_bots_own_reactions_and_other_messages_are_ignored(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    ts = await answer(slack, fake_slack)
    await slack.react(BOT_USER_ID, "+1", ts)  # the affordance the bot added itself
    await slack.react("U2", "+1", "1699999999.000001")  # not one of our answers
    await slack.react("U2", "tada", ts)  # not a rating
    await slack.react("U4", "-1", ts)  # a real rating
    await eventually(lambda: generation(app).ratings)
    await asyncio.sleep(0.2)  # time enough for a stray handler to store a rating too
    assert [(r.rater_id, r.score) for r in generation(app).ratings] == [("U4", -1)]


@pytest.mark.parametrize(
    ("reaction", "kind"), [("repeat", "regenerate"), ("fast_forward", "continue")]
)
async def test_repeat_and_fast_forward_answer_in_the_thread(
    slack: SignedClient, fake_slack: FakeSlack, app: App, reaction: str, kind: str
) -> None:
    ts = await answer(slack, fake_slack)
    await slack.react("U2", reaction, ts)
    await fake_slack.wait_for(lambda: len(fake_slack.called("reactions.add")) == 8)

    follow_up = generation(app, 2)
    assert follow_up.kind == kind and follow_up.user_id == "U2"
    assert follow_up.conversation_id == generation(app).conversation_id
    if kind == "continue":
        assert follow_up.parent_id == 1 and follow_up.prompt.endswith(generation(app).output)
    else:
        assert follow_up.prompt == generation(app).prompt
    (post,) = [p for p in fake_slack.called("chat.postMessage") if p.get("thread_ts")]
    assert post["thread_ts"] == ts  # in the thread of the conversation's first answer
    assert follow_up.message_id is not None
    reply = fake_slack.text_of("C1", follow_up.message_id.split(":")[1])
    assert f"<@U2> {'another take on' if kind == 'regenerate' else 'continued'} #1" in reply
    assert "#2 ·" in reply


async def test_a_redelivered_event_does_not_answer_twice(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    ts = await answer(slack, fake_slack)
    await slack.react("U2", "repeat", ts, event_id="Ev-retried")
    await slack.react("U2", "repeat", ts, event_id="Ev-retried")  # Slack's retry
    await fake_slack.wait_for(lambda: len(fake_slack.called("reactions.add")) == 8)
    await asyncio.sleep(0.3)  # a second answer would have started by now
    assert len(fake_slack.called("chat.postMessage")) == 2
    assert GenerationRepository(app.db).count() == 2


async def test_enough_flag_reactions_hide_the_answer(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    ts = await answer(slack, fake_slack)
    needed = app.chat.config.reports_to_hide
    flag = "triangular_flag_on_post"
    for reporter in ["U2"] * 2 + [f"U{n}" for n in range(3, needed + 1)]:  # U2 counts once
        await slack.react(reporter, flag, ts)
    await asyncio.sleep(0.2)
    assert fake_slack.messages[("C1", ts)]["text"] != HIDDEN_TEXT  # one report short

    await slack.react("U99", flag, ts)
    await eventually(lambda: fake_slack.messages[("C1", ts)]["text"] == HIDDEN_TEXT)
    assert generation(app).hidden
