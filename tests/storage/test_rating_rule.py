"""The collusion-resistant rating rule, on plain rows and through the repository."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from storage import CuratedSampleRepository, GenerationRepository, NewGeneration, RatingRule
from storage.rating_rule import (
    DISCORD_EPOCH_MS,
    RatingRow,
    discord_account_created,
    passing,
    wilson_lower_bound,
)

DAY = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _rows(generation_id: int, author: str, votes: dict[str, int], at=DAY) -> list[RatingRow]:
    return [
        RatingRow(hash((generation_id, r)) % 10**9, generation_id, author, r, s, at)
        for r, s in votes.items()
    ]


def test_wilson_bound_needs_agreement_from_several_raters() -> None:
    assert round(wilson_lower_bound(3, 3), 2) == 0.44
    assert wilson_lower_bound(2, 2) < 0.4 < wilson_lower_bound(3, 3)
    assert wilson_lower_bound(4, 5) < wilson_lower_bound(5, 6)


def test_self_ratings_never_count_and_k_raters_are_needed() -> None:
    rule = RatingRule()
    with_self = _rows(1, "alice", {"alice": 1, "bob": 1, "carol": 1})
    assert passing(with_self, rule) == {}  # two others are not three
    three = _rows(2, "alice", {"alice": 1, "bob": 1, "carol": 1, "dave": 1})
    why = passing(three, rule)[2]
    assert why["raters"] == ["bob", "carol", "dave"] and why["up"] == 3
    split = _rows(3, "alice", {"bob": 1, "carol": 1, "dave": 1, "erin": -1})
    assert passing(split, rule) == {}  # net 2 but the bound is 0.3


def test_a_raters_thumbs_up_push_only_so_many_outputs_a_day() -> None:
    rule = RatingRule(min_raters=3, daily_cap=2)
    rows = []
    for g in range(4):  # the same three friends upvote four outputs in one day
        at = DAY + timedelta(minutes=g)
        rows += _rows(g, "author", {"bob": 1, "carol": 1, "dave": 1}, at)
    assert sorted(passing(rows, rule)) == [0, 1]
    later = [
        RatingRow(99 + i, 3, "author", r, 1, DAY + timedelta(days=1))
        for i, r in enumerate(("bob", "carol", "dave"))
    ]
    assert 3 in passing(rows[:6] + later, rule)  # a new day, a new allowance


def test_rating_derived_samples_wait_for_review_and_record_why(db) -> None:
    generations, samples = GenerationRepository(db), CuratedSampleRepository(db)
    new = NewGeneration("discord", "alice", "Hi", " there", {}, 1, "v1", 1, 1, 0.1)
    gid = generations.add(new).id
    for rater in ("alice", "bob", "carol", "dave"):
        generations.rate(gid, rater, 1, "👍")
    rows = samples.rating_rows()
    assert samples.apply_ratings(passing(rows, RatingRule()), auto_approve=False) == (0, 0)
    (queued,) = samples.pending()
    assert queued.status == "pending" and not queued.active and queued.text == "Hi there"
    assert queued.why is not None and queued.why["raters"] == ["bob", "carol", "dave"]
    assert samples.active() == []
    approved = samples.review(queued.id, "owner", approve=True)
    assert approved.active and approved.reviewed_by == "owner"
    assert [s.id for s in samples.active()] == [queued.id]


def test_discord_accounts_younger_than_a_week_do_not_count() -> None:
    rated = datetime(2026, 6, 1, tzinfo=UTC)

    def snowflake(made: datetime) -> str:
        return str((int(made.timestamp() * 1000) - DISCORD_EPOCH_MS) << 22)

    assert discord_account_created(snowflake(rated)) == rated
    old = [snowflake(rated - timedelta(days=400 + i)) for i in range(3)]
    fresh = [snowflake(rated - timedelta(hours=2 + i)) for i in range(3)]
    rows = [
        RatingRow(i, 1, "author", rater, 1, rated, "discord")
        for i, rater in enumerate(old[:2] + fresh)
    ]
    rule = RatingRule(min_raters=3, min_account_days=7)
    assert passing(rows, rule) == {}  # two real accounts and three new ones: not enough
    rows.append(RatingRow(9, 1, "author", old[2], 1, rated, "discord"))
    assert list(passing(rows, rule)) == [1]
    web = [replace(r, platform="web") for r in rows[:5]]  # browser ids carry no age
    assert list(passing(web, RatingRule(min_raters=3, min_account_days=7))) == [1]


def test_the_mirror_rule_picks_outputs_several_raters_turned_down() -> None:
    from storage.rating_rule import failing

    rule = RatingRule(min_raters=3, daily_cap=2)
    disliked = _rows(1, "alice", {"bob": -1, "carol": -1, "dave": -1})
    why = failing(disliked, rule)[1]
    assert (why["up"], why["down"], why["upper_bound"]) == (0, 3, 0.562)
    # their own 👎 does not count, nor does a split verdict, nor a 👍 output
    assert failing(_rows(2, "alice", {"alice": -1, "bob": -1, "carol": -1}), rule) == {}
    assert failing(_rows(3, "a", {"bob": -1, "carol": -1, "dave": -1, "erin": 1}), rule) == {}
    assert failing(_rows(4, "a", {"bob": 1, "carol": 1, "dave": 1}), rule) == {}
    # a group's 👎 push only so many outputs a day too
    rows = []
    for g in range(4):
        rows += _rows(g, "author", {"bob": -1, "carol": -1, "dave": -1}, DAY + timedelta(minutes=g))
    assert sorted(failing(rows, rule)) == [0, 1]
