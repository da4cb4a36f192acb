"""Moderation in the chat: refused prompts, withheld outputs, streaming that shows only text
the moderator passed."""

from __future__ import annotations

import pytest

from admin.moderation.fake import FakeModerator
from bot.chat import ChatConfig, ChatService, Finished, Origin
from bot.metrics import Metrics
from bot.params import InvalidRequest
from bot.screening import WITHHELD_TEXT, PromptRefused, StreamGate
from model.backends.base import Chunk
from model.backends.fake import ScriptedBackend
from storage import CuratedSampleRepository, ServerSettingsRepository

ALICE = Origin("discord", "alice", guild_id="g1", channel_id="c1")
SENTENCE = "the quick brown fox jumps over the lazy dog and says badword to all"
WORDS = tuple(f" {w}" for w in SENTENCE.split(" "))


def _chat(db, backend=None, window: int = 8) -> tuple[ChatService, FakeModerator]:
    moderator = FakeModerator(("badword",))
    config = ChatConfig(cooldown_s=0.0, moderation_window_chars=window)
    return ChatService(db, backend or ScriptedBackend(), config, moderator=moderator), moderator


async def test_a_flagged_prompt_is_refused_privately_and_nothing_is_generated(db) -> None:
    backend = ScriptedBackend()
    chat, _ = _chat(db, backend)
    with pytest.raises(PromptRefused, match="I did not send that prompt: it contains a blocked"):
        await chat.generate(ALICE, "Say BADWORD please")
    assert backend.requests == []


async def test_a_servers_own_blocklist_applies_in_that_server_only(db) -> None:
    chat, _ = _chat(db)
    await db.run(ServerSettingsRepository(db).update, "discord", "g1", "owner", blocklist=("kale",))
    with pytest.raises(InvalidRequest):
        await chat.generate(ALICE, "I love kale")
    elsewhere = Origin("discord", "alice", guild_id="g2", channel_id="c9")
    assert (await chat.generate(elsewhere, "I love kale")).generations


async def test_a_flagged_output_streams_nothing_unchecked_and_is_withheld(db) -> None:
    chat, moderator = _chat(db, ScriptedBackend(words=WORDS))
    events = [e async for e in chat.generate_stream(ALICE, "Tell me", {"max_new_tokens": 40})]
    shown = "".join(e.text for e in events if isinstance(e, Chunk))
    assert "badword" not in shown and "bad" not in shown.split()[-1]
    assert shown  # the clean start did stream
    finished = events[-1]
    assert isinstance(finished, Finished)
    (record,) = finished.generations
    assert record.output == WITHHELD_TEXT == finished.result.texts[0]
    stored = await chat.get(record.id)
    assert "badword" in stored.output and stored.flagged == "contains a blocked term"
    # every published piece had been passed by the moderator, with the window after it
    covered: set[int] = set()
    assert moderator.checked[0] == "Tell me"
    for text in moderator.checked[1:]:
        start = stored.output.index(text)
        covered.update(range(start, start + len(text)))
    assert set(range(len(shown) + 8)) <= covered
    # members never see it again, and it cannot be continued or curated
    assert (await chat.history(ALICE))[0].output == WITHHELD_TEXT
    with pytest.raises(InvalidRequest, match="withheld"):
        await chat.continue_(record.id, ALICE)
    for rater in ("bob", "carol", "dave"):
        await chat.rate(record.id, rater, "👍")
    assert await db.run(CuratedSampleRepository(db).sync_from_ratings, 1, 1) == (0, 0)


async def test_a_clean_output_streams_whole(db) -> None:
    clean = tuple(w for w in WORDS if w != " badword")
    chat, _ = _chat(db, ScriptedBackend(words=clean))
    events = [e async for e in chat.generate_stream(ALICE, "Tell me", {"max_new_tokens": 40})]
    shown = "".join(e.text for e in events if isinstance(e, Chunk))
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert shown == finished.generations[0].output and finished.generations[0].flagged is None


async def test_moderation_actions_are_counted_for_prometheus(db) -> None:
    backend = ScriptedBackend(words=WORDS)
    metrics = Metrics(db, backend)
    chat = ChatService(
        db,
        backend,
        ChatConfig(cooldown_s=0.0, moderation_window_chars=8),
        metrics,
        moderator=FakeModerator(("badword",)),
    )
    with pytest.raises(PromptRefused):
        await chat.generate(ALICE, "Say badword")
    await chat.generate(ALICE, "Tell me", {"max_new_tokens": 40, "samples": 2})
    text = metrics.exposition().decode()
    reason = 'reason="contains a blocked term"'
    assert f'gpt2bot_moderation_actions_total{{action="prompt_refused",{reason}}} 1.0' in text
    assert f'gpt2bot_moderation_actions_total{{action="output_withheld",{reason}}} 2.0' in text


async def test_the_stream_gate_checks_only_what_is_new_and_sees_terms_across_the_edge() -> None:
    moderator = FakeModerator(("badword",))
    gate = StreamGate(moderator.check, 8)
    text = "".join(f"clean text number {n:03d}. " for n in range(40))  # 1,000 characters
    shown = "".join([await gate.feed(text[i : i + 10]) for i in range(0, len(text), 10)])
    assert text.startswith(shown) and len(shown) >= len(text) - 2 * 8
    # each check reads what is new and a window before it: one pass, not one per window
    assert sum(len(checked) for checked in moderator.checked) < 3 * len(text)

    moderator.checked.clear()
    gate = StreamGate(moderator.check, 8)
    pieces = ["a" * 36 + " bad", "word and more text"]  # the term straddles a checked edge
    shown = "".join([await gate.feed(piece) for piece in pieces])
    first, second = moderator.checked
    assert first.endswith("bad") and len(second) < len(gate.text)  # the second: what is new
    assert shown == "a" * 32 and gate.verdict is not None and gate.verdict.flagged
