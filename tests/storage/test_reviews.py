"""Blind review storage: verdicts by version, win rates per pair, which prompts may be reviewed,
and a member's deletion reaching the items made from their prompts."""

import pytest
from sqlalchemy import inspect, text

from storage import (
    Database,
    GenerationRepository,
    MemberDataRepository,
    NewGeneration,
    NewReviewItem,
    NotFound,
    ReportRepository,
    ReviewRepository,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from storage.models import Generation


def generation(repo: GenerationRepository, prompt: str, **overrides) -> int:
    fields = dict(
        platform="discord",
        user_id="alice",
        guild_id="g1",
        prompt=prompt,
        output=" and more",
        params={},
        seed=1,
        model_version="v1",
        prompt_tokens=1,
        completion_tokens=2,
        latency_s=0.1,
    )
    fields.update(overrides)
    return repo.add(NewGeneration(**fields)).id


def item(a: str = "v1", b: str = "v2", **overrides) -> NewReviewItem:
    fields = dict(
        prompt="A language model is",
        source="fixed",
        version_a=a,
        version_b=b,
        output_a=f" what {a} wrote",
        output_b=f" what {b} wrote",
        params={"temperature": 0.8, "max_new_tokens": 64},
        seed=1234,
        created_by="owner",
    )
    fields.update(overrides)
    return NewReviewItem(**fields)


def test_a_verdict_is_stored_as_the_version_that_won_and_only_once(db):
    reviews = ReviewRepository(db)
    shown = reviews.add(item("v2", "v1"))  # v2 was shown as A
    assert shown.verdict is None and shown.seed == 1234 and shown.params["max_new_tokens"] == 64

    judged = reviews.decide(shown.id, "a", "owner")

    assert (judged.verdict, judged.winner, judged.reviewer) == ("a", "v2", "owner")
    assert judged.decided_at is not None
    with pytest.raises(ValueError, match="judged already"):
        reviews.decide(shown.id, "b", "another-owner")
    assert reviews.get(shown.id).winner == "v2"  # the first verdict stands
    with pytest.raises(NotFound):
        reviews.decide(999, "a", "owner")
    with pytest.raises(ValueError):
        reviews.decide(reviews.add(item()).id, "both", "owner")


def test_win_rates_are_per_unordered_pair_whichever_side_each_was_shown_on(db):
    reviews = ReviewRepository(db)
    verdicts = [
        (("v1", "v2"), "a"),
        (("v2", "v1"), "b"),
        (("v2", "v1"), "a"),
        (("v1", "v2"), "tie"),
    ]
    for (a, b), verdict in verdicts:
        reviews.decide(reviews.add(item(a, b)).id, verdict, "owner")
    reviews.decide(reviews.add(item("v3", "v1")).id, "a", "owner")
    reviews.add(item("v1", "v2"))  # waiting: no verdict, not counted

    rates = reviews.win_rates()

    assert [(r.first, r.second) for r in rates] == [("v1", "v2"), ("v1", "v3")]
    pair = rates[0]  # v1 won twice (as A, then as B), v2 once, one tie
    assert (pair.first_wins, pair.second_wins, pair.ties, pair.judged) == (2, 1, 1, 4)
    assert pair.first_rate == pytest.approx(2.5 / 4) and pair.second_rate == pytest.approx(1.5 / 4)
    assert (rates[1].first_wins, rates[1].second_wins, rates[1].second_rate) == (0, 1, 1.0)
    assert [i.id for i in reviews.iter_decided()] == [1, 2, 3, 4, 5]


def test_the_waiting_item_of_a_pair_comes_back_to_the_same_owner_until_judged(db):
    reviews = ReviewRepository(db)
    shown = reviews.add(item("v2", "v1"))
    assert reviews.waiting("owner", ("v1", "v2")).id == shown.id  # either order
    assert reviews.waiting("someone-else", ("v1", "v2")) is None
    assert reviews.waiting("owner", ("v1", "v3")) is None
    reviews.decide(shown.id, "tie", "owner")
    assert reviews.waiting("owner", ("v1", "v2")) is None


def test_recent_prompts_leave_out_what_members_must_not_see_or_took_back(db):
    repo = GenerationRepository(db)
    generation(repo, "A fine prompt")
    generation(repo, "A fine prompt")  # asked twice: offered once
    regenerated = generation(repo, "A 🔁 of it", kind="regenerate")
    flagged = generation(repo, "It wrote something rude", flagged="a blocked word")
    reported = generation(repo, "Reported once")
    ReportRepository(db).add(reported, "bob", hide_at=3)  # not hidden yet, but reported
    hidden = generation(repo, "Hidden by reports")
    with db.session() as session:
        session.get(Generation, hidden).hidden = True
    generation(repo, "   ")
    generation(repo, "Carol's prompt", user_id="carol")
    MemberDataRepository(db).delete("discord", "carol")
    generation(repo, "Carol again, after deleting her data", user_id="carol")
    newest = generation(repo, "The newest prompt", platform="slack", user_id="U1")

    prompts = ReviewRepository(db).recent_prompts(limit=10)

    assert [p.prompt for p in prompts] == ["The newest prompt", "A fine prompt"]
    assert prompts[0].generation_id == newest
    assert {regenerated, flagged} & {p.generation_id for p in prompts} == set()
    assert len(ReviewRepository(db).recent_prompts(limit=1)) == 1


def test_deleting_a_members_data_blanks_the_items_made_from_their_prompt(db):
    repo, reviews = GenerationRepository(db), ReviewRepository(db)
    theirs = generation(repo, "Alice's private thought")
    from_them = reviews.add(
        item(prompt="Alice's private thought", source="recent", generation_id=theirs)
    )
    reviews.decide(from_them.id, "a", "owner")
    fixed = reviews.add(item())
    before = reviews.win_rates()

    MemberDataRepository(db).delete("discord", "alice")

    blanked = reviews.get(from_them.id)
    assert blanked.redacted and (blanked.prompt, blanked.output_a, blanked.output_b) == ("", "", "")
    assert blanked.winner == "v1" and reviews.win_rates() == before  # the verdict stays
    assert reviews.get(fixed.id).prompt == "A language model is"


def test_a_server_admins_deletion_of_an_output_blanks_its_review_items(db):
    repo, reviews = GenerationRepository(db), ReviewRepository(db)
    theirs = generation(repo, "Said in the server")
    made = reviews.add(item(prompt="Said in the server", source="recent", generation_id=theirs))
    MemberDataRepository(db).delete_generation("discord", "g1", theirs)
    assert reviews.get(made.id).prompt == "" and reviews.get(made.id).redacted


def test_migration_0008_adds_the_review_table_to_an_existing_database(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(db.engine, "0006")  # safe learning, before reviews (and A/B experiments)
    assert "review_items" not in inspect(db.engine).get_table_names()

    upgrade(db.engine)

    assert current_revision(db.engine) == head_revision()
    kept = generation(GenerationRepository(db), "a member's prompt")
    stored = ReviewRepository(db).add(item(source="recent", generation_id=kept))
    assert ReviewRepository(db).get(stored.id).generation_id == kept
    GenerationRepository(db).rate(kept, "r", 1, "👍")
    downgrade(db.engine, "0006")  # and back: the table goes, the generations and ratings stay
    assert "review_items" not in inspect(db.engine).get_table_names()
    with db.engine.connect() as connection:  # as 0006 reads them (the ORM is at head)
        prompt = connection.execute(
            text("SELECT prompt FROM generations WHERE id = :id"), {"id": kept}
        )
        assert prompt.scalar() == "a member's prompt"
        raters = connection.execute(
            text("SELECT rater_id FROM ratings WHERE generation_id = :id"), {"id": kept}
        )
        assert raters.scalars().all() == ["r"]
    db.dispose()
