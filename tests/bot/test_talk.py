"""The platform-neutral side of talking in chat: a reply continues a chain with the member's
words, a chain that outgrows GPT-2's context says so once, templates wrap new prompts and are
screened, and story threads end after their turns or their idle time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from admin.errors import Invalid
from admin.moderation.fake import FakeModerator
from admin.servers import Servers
from bot.chat import CONTEXT_NOTICE, ChatConfig, ChatService, Origin
from bot.screening import PromptRefused
from bot.story import StoryEnded, StoryThreads
from model.backends.fake import ScriptedBackend

ALICE = Origin("discord", "alice", guild_id="g1", channel_id="c1")
BOB = Origin("discord", "bob", guild_id="g1", channel_id="c1")


def chat_on(db, backend: ScriptedBackend | None = None, **config: object) -> ChatService:
    settings = ChatConfig(cooldown_s=0.0, **config)  # type: ignore[arg-type]
    return ChatService(
        db, backend or ScriptedBackend(), settings, moderator=FakeModerator(("badword",))
    )


async def test_a_reply_is_a_child_with_the_members_words_and_is_moderated(db) -> None:
    backend = ScriptedBackend()
    chat = chat_on(db, backend)
    root = (await chat.generate(ALICE, "Once")).generations[0]

    reply = (await _last(chat.continue_stream(root.id, BOB, added=" then more "))).generations[0]
    assert (reply.kind, reply.parent_id, reply.conversation_id) == (
        "reply",
        root.id,
        root.conversation_id,
    )
    assert reply.prompt == root.prompt + root.output + "\nthen more"
    with pytest.raises(PromptRefused):
        await _last(chat.continue_stream(reply.id, BOB, added="a badword here"))
    assert len(backend.requests) == 2  # the refused reply never reached the model


async def test_a_chain_that_outgrows_the_context_says_so_once(db) -> None:
    chat = chat_on(db)  # the scripted backend counts words as tokens
    long_prompt = " ".join(["w"] * 600)
    options = {"max_new_tokens": 512}
    root = (await chat.generate(ALICE, long_prompt, options)).generations[0]

    first = await _last(chat.continue_stream(root.id, BOB, added="more"))
    second = await _last(chat.continue_stream(first.generations[0].id, ALICE, added="again"))

    assert first.notice == CONTEXT_NOTICE and first.generations[0].prompt_truncated
    assert len(first.generations[0].prompt.split(" ")) <= 1024 - 512
    assert second.notice is None and second.generations[0].prompt_truncated


async def test_a_template_wraps_new_prompts_only_and_is_stored(db) -> None:
    servers = Servers(db, FakeModerator(("badword",)))
    with pytest.raises(Invalid, match="exactly once"):
        await servers.update("admin", "discord", "g1", templates={"": "{prompt} and {prompt}"})
    with pytest.raises(Invalid, match="refused by moderation"):
        await servers.update("admin", "discord", "g1", templates={"": "badword: {prompt}"})
    with pytest.raises(Invalid, match="at most 500"):
        await servers.update("admin", "discord", "g1", templates={"": "x" * 500 + "{prompt}"})
    await servers.update(
        "admin", "discord", "g1", templates={"": "Story: {prompt}", "c2": "Q: {prompt}\\nA:"}
    )
    chat = chat_on(db)

    made = (await chat.generate(ALICE, "a fox")).generations[0]
    elsewhere = Origin("discord", "alice", guild_id="g1", channel_id="c2")
    asked = (await chat.generate(elsewhere, "why?")).generations[0]
    reply = (await _last(chat.continue_stream(made.id, BOB, added="next"))).generations[0]

    assert (made.prompt, made.template) == ("Story: a fox", "Story: {prompt}")
    assert (asked.prompt, asked.template) == ("Q: why?\nA:", "Q: {prompt}\nA:")
    assert reply.prompt.startswith("Story: a fox") and reply.prompt.endswith("\nnext")
    assert reply.template == "Story: {prompt}"  # the chain's template, not applied again


async def test_a_story_ends_after_its_turns_or_its_idle_time(db) -> None:
    chat = chat_on(db)
    stories = StoryThreads(chat, db, ChatConfig(story_max_turns=2))
    start = (await chat.generate(ALICE, "Dawn")).generations[0]
    thread = Origin("discord", "bob", "g1", "t1", parent_channel_id="c1")

    for left in (1, 0):
        async with stories.in_line("discord", "t1"):
            turn = await stories.turn("discord", "t1", start)
            assert turn.left == left
            await _last(chat.continue_stream(turn.last.id, thread, added="on"))
    with pytest.raises(StoryEnded, match="reached its 2 turns"):
        await stories.turn("discord", "t1", start)

    stories.idle = timedelta(0)  # every story is idle now
    with pytest.raises(StoryEnded, match="went quiet"):
        await stories.turn("discord", "t2", start)


async def _last(stream):  # type: ignore[no-untyped-def]
    last = None
    async for event in stream:
        last = event
    return last
