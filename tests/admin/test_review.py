"""The blind review service over a real database and a scripted backend that serves several
versions: which pair, which prompt, the same seed for both, sides hidden and randomised,
versions loaded for the item and unloaded after it, verdicts and win rates."""

from __future__ import annotations

import random
from dataclasses import fields

import pytest

from admin.errors import ReviewUnavailable
from admin.results import BlindPair
from admin.review import Reviews
from model.backends.base import GenerationRequest
from model.backends.fake import ScriptedBackend
from model.backends.idle import IdleBackend
from model.evaluate import EVAL_PROMPTS
from storage import Database, GenerationRepository, ModelVersionRepository, NewGeneration


def says(request: GenerationRequest, sample: int) -> str:
    return f" [{request.version} with seed {request.params.seed}]"


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(text=says, model_version="v1")


def register(db: Database, *names: str, active: str = "v1") -> None:
    repo = ModelVersionRepository(db)
    for name in names:
        repo.add(name, f"/models/{name}", "bootstrap")
    repo.activate(active)


def member_prompt(db: Database, prompt: str) -> int:
    new = NewGeneration(
        platform="discord",
        user_id="alice",
        prompt=prompt,
        output=" and so on",
        params={},
        seed=1,
        model_version="v1",
        prompt_tokens=1,
        completion_tokens=1,
        latency_s=0.1,
    )
    return GenerationRepository(db).add(new).id


async def test_default_pair_is_the_active_version_against_the_newest_other_one(db, backend):
    register(db, "v1", "v2", "v3")
    reviews = Reviews(db, backend, rng=random.Random(3), recent_share=0.0)

    shown = await reviews.next_item("owner")

    assert {f.name for f in fields(BlindPair)} == {"id", "prompt", "source", "output_a", "output_b"}
    assert shown.source == "fixed" and shown.prompt in EVAL_PROMPTS
    sides = {shown.output_a.split()[0], shown.output_b.split()[0]}
    assert sides == {"[v1", "[v3"}  # both versions, newest other than the active one
    seeds = {r.params.seed for r in backend.requests}
    assert len(backend.requests) == 2 and len(seeds) == 1  # the same seed and params for both
    assert backend.requests[0].params == backend.requests[1].params
    assert backend.resident_versions == ("v1",)  # v3 was loaded for the item, then unloaded


async def test_sides_are_random_and_a_verdict_reveals_which_was_which(db, backend):
    register(db, "v1", "v2")
    reviews = Reviews(db, backend, rng=random.Random(11), recent_share=0.0)
    first_shown = []
    for _ in range(8):
        shown = await reviews.next_item("owner")
        judged = await reviews.record("owner", shown.id, "a")
        assert judged.winner == judged.version_a and judged.output_a == shown.output_a
        assert judged.output_a.startswith(f" [{judged.version_a} ")
        first_shown.append(judged.version_a)
    assert set(first_shown) == {"v1", "v2"}  # each version was shown as "A" at times

    [rate] = await reviews.win_rates()
    wins = {rate.first: rate.first_wins, rate.second: rate.second_wins}
    assert wins == {v: first_shown.count(v) for v in ("v1", "v2")} and rate.ties == 0


async def test_a_shown_item_comes_back_until_it_is_judged(db, backend):
    register(db, "v1", "v2")
    reviews = Reviews(db, backend, rng=random.Random(3), recent_share=0.0)
    shown = await reviews.next_item("owner")
    assert await reviews.next_item("owner") == shown  # a reload does not skip it
    assert len(backend.requests) == 2  # nor generate again
    await reviews.record("owner", shown.id, "tie")
    assert (await reviews.next_item("owner")).id != shown.id
    with pytest.raises(ValueError, match="judged already"):
        await reviews.record("owner", shown.id, "b")
    with pytest.raises(ValueError, match="Choose a"):
        await reviews.record("owner", shown.id, "left")
    with pytest.raises(LookupError, match="no review pair #99"):
        await reviews.record("owner", 99, "a")


async def test_a_recent_member_prompt_is_used_and_remembered(db, backend):
    register(db, "v1", "v2")
    generation_id = member_prompt(db, "What my server asked")
    reviews = Reviews(db, backend, recent_share=1.0)

    shown = await reviews.next_item("owner")
    judged = await reviews.record("owner", shown.id, "b")

    assert (shown.source, shown.prompt) == ("recent", "What my server asked")
    assert judged.generation_id == generation_id
    assert backend.requests[0].prompt == "What my server asked"


async def test_the_pair_can_be_chosen_or_be_the_ab_candidate(db, backend):
    register(db, "v1", "v2", "v3")

    async def candidate() -> str:
        return "v2"

    reviews = Reviews(db, backend, candidate=candidate, rng=random.Random(3), recent_share=0.0)
    judged = await reviews.record("owner", (await reviews.next_item("owner")).id, "tie")
    assert judged.pair == ("v1", "v2")  # the A/B candidate, not the newest version

    assert backend.resident_versions == ("v1", "v2")  # loaded for it, kept for the A/B arm

    chosen = await reviews.next_item("owner", "v2", "v3")  # neither is the active one
    judged = await reviews.record("owner", chosen.id, "a")
    assert judged.pair == ("v2", "v3") and backend.resident_versions == ("v1", "v2")
    again = await reviews.next_item("owner", same_pair_as=chosen.id)
    assert (await reviews.record("owner", again.id, "a")).pair == ("v2", "v3")
    one = await reviews.next_item("owner", "v3")  # one named: it against the active one
    assert (await reviews.record("owner", one.id, "a")).pair == ("v1", "v3")

    with pytest.raises(LookupError, match="no model version named 'v9'"):
        await reviews.next_item("owner", "v9")
    with pytest.raises(ValueError, match="two different versions"):
        await reviews.next_item("owner", "v2", "v2")


async def test_one_version_or_a_backend_serving_one_version_is_explained(db, backend):
    register(db, "v1")
    with pytest.raises(ReviewUnavailable, match="Train or register a second version first"):
        await Reviews(db, backend).next_item("owner")

    register(db, "v2")
    with pytest.raises(ReviewUnavailable, match="serves one version at a time"):
        await Reviews(db, IdleBackend("v1")).next_item("owner")


async def test_a_version_unloaded_meanwhile_is_not_passed_off_as_itself(db):
    register(db, "v1", "v2")

    class Forgetful(ScriptedBackend):
        async def load_version(self, version: str, path: str) -> None:
            """Says yes, keeps nothing: the active version answers instead."""

    reviews = Reviews(
        db, Forgetful(text=says, model_version="v1"), rng=random.Random(3), recent_share=0.0
    )
    with pytest.raises(ReviewUnavailable, match="try again"):
        await reviews.next_item("owner")
    assert await reviews.win_rates() == []
