"""The default moderator: our blocklist and the offline classifier, and the plugin seam."""

from __future__ import annotations

import asyncio
import threading

import pytest

from admin.moderation import ModerationConfig
from admin.moderation.batching import BatchScorer
from admin.moderation.default import DefaultModerator
from admin.moderation.terms import Blocklist
from bot import plugins


async def test_the_default_moderator_loads_as_the_default_plugin_and_works_offline() -> None:
    factory = plugins.load(plugins.MODERATOR_GROUP, "default")
    moderator = factory(ModerationConfig(blocklist=("zorblax",)))
    assert not (await moderator.check("The data looks good today.")).flagged
    offensive = await moderator.check("you are a stupid piece of shit")
    assert offensive.flagged and offensive.reason == "reads as offensive"
    assert (await moderator.check("A ZORBLAX appears")).reason == "contains a blocked term"
    assert (await moderator.check("fine words", ["fine words"])).flagged


async def test_the_threshold_is_a_setting() -> None:
    lenient = DefaultModerator(ModerationConfig(threshold=1.0))
    assert not (await lenient.check("this is shit")).flagged


def test_blocklist_terms_match_whole_words_through_spacing_and_case_tricks() -> None:
    blocklist = Blocklist(["kill yourself", "re:z+o+r+b"])
    assert blocklist.verdict("KILL   Yourself").flagged
    assert blocklist.verdict("kill\u200b yourself").flagged
    assert blocklist.verdict("zzzooorb").flagged
    assert not blocklist.verdict("skill yourselves").flagged


async def test_texts_asked_about_together_are_scored_in_one_call_off_the_event_loop() -> None:
    calls: list[tuple[str, list[str]]] = []

    def score(texts: list[str]) -> list[float]:
        calls.append((threading.current_thread().name, texts))
        return [0.9 if "rude" in text else 0.1 for text in texts]

    scorer = BatchScorer(score)
    burst = [scorer.score(f"prompt {n}") for n in range(200)]
    scores = await asyncio.gather(*burst, scorer.score("a rude one"))
    assert scores == [0.1] * 200 + [0.9]
    [(thread, texts)] = calls  # a burst is one call ...
    assert len(texts) == 201 and thread != threading.main_thread().name  # ... on a worker
    assert await scorer.score("later") == 0.1 and len(calls) == 2


async def test_a_failing_classifier_fails_its_batch_and_the_next_one_still_runs() -> None:
    broken = True

    def score(texts: list[str]) -> list[float]:
        if broken:
            raise RuntimeError("model file is damaged")
        return [0.2] * len(texts)

    scorer = BatchScorer(score)
    results = await asyncio.gather(scorer.score("a"), scorer.score("b"), return_exceptions=True)
    assert [str(r) for r in results] == ["model file is damaged"] * 2
    broken = False
    assert await scorer.score("c") == 0.2


async def test_a_waiter_that_went_away_does_not_stop_the_others() -> None:
    release = threading.Event()

    def score(texts: list[str]) -> list[float]:
        release.wait(5)
        return [0.3] * len(texts)

    scorer = BatchScorer(score)
    first = asyncio.ensure_future(scorer.score("first"))
    await asyncio.sleep(0.05)  # its call is under way; these two wait for the next one
    gone, kept = (asyncio.ensure_future(scorer.score(t)) for t in ("gone", "kept"))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    assert await first == 0.3 and await kept == 0.3
    with pytest.raises(asyncio.CancelledError):
        await gone
