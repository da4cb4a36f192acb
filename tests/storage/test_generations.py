import pytest

from storage import GenerationRepository, NewGeneration, NotFound


def new(**overrides):
    fields = dict(
        platform="discord",
        user_id="alice",
        guild_id="g1",
        channel_id="c1",
        prompt="Hello",
        output=" world",
        params={"temperature": 0.8, "top_k": 50},
        seed=42,
        model_version="v1",
        prompt_tokens=1,
        completion_tokens=2,
        latency_s=0.5,
    )
    fields.update(overrides)
    return NewGeneration(**fields)


def test_generation_round_trip_returns_plain_records(db):
    repo = GenerationRepository(db)
    stored = repo.add(new())
    loaded = repo.get(stored.id)
    assert loaded.prompt == "Hello" and loaded.output == " world"
    assert loaded.params == {"temperature": 0.8, "top_k": 50}
    assert loaded.seed == 42 and loaded.model_version == "v1"
    assert loaded.parent_id is None and loaded.conversation_id == stored.conversation_id
    assert loaded.created_at is not None
    assert type(loaded).__module__ == "storage.generations"


def test_conversation_keeps_its_chain_in_order(db):
    repo = GenerationRepository(db)
    root = repo.add(new())
    sibling = repo.add(new(kind="regenerate", conversation_id=root.conversation_id, seed=7))
    child = repo.add(new(kind="continue", parent_id=root.id, conversation_id=root.conversation_id))
    other = repo.add(new())
    chain = repo.conversation(root.conversation_id)
    assert [g.id for g in chain] == [root.id, sibling.id, child.id]
    assert chain[2].parent_id == root.id
    assert other.conversation_id != root.conversation_id


def test_one_rating_per_rater_replaced_then_removed(db):
    repo = GenerationRepository(db)
    generation = repo.add(new())
    repo.rate(generation.id, "bob", 1, "👍")
    repo.rate(generation.id, "carol", 1, "👍")
    repo.rate(generation.id, "bob", -1, "👎")  # bob changes his mind
    ratings = {r.rater_id: r.score for r in repo.get(generation.id).ratings}
    assert ratings == {"bob": -1, "carol": 1}
    assert not repo.unrate(generation.id, "bob", "👍")  # removing the old reaction: no effect
    assert repo.unrate(generation.id, "bob", "👎")
    assert [r.rater_id for r in repo.get(generation.id).ratings] == ["carol"]


def test_rating_an_unknown_generation_fails(db):
    with pytest.raises(NotFound):
        GenerationRepository(db).rate(999, "bob", 1, "👍")


def test_message_ids_find_generations(db):
    repo = GenerationRepository(db)
    generation = repo.add(new())
    repo.set_message_id(generation.id, "m-123")
    assert repo.find_by_message("discord", "m-123").id == generation.id
    assert repo.find_by_message("slack", "m-123") is None


def test_iter_all_pages_through_everything(db, monkeypatch):
    monkeypatch.setattr("storage.generations.EXPORT_PAGE_SIZE", 2)
    repo = GenerationRepository(db)
    ids = [repo.add(new(prompt=f"p{i}")).id for i in range(5)]
    assert [g.id for g in repo.iter_all()] == ids


def test_stats_per_model_version(db):
    repo = GenerationRepository(db)
    a1, a2 = repo.add(new(model_version="a")), repo.add(new(model_version="a"))
    repo.add(new(model_version="b"))
    repo.rate(a1.id, "x", 1, "👍")
    repo.rate(a1.id, "y", -1, "👎")
    repo.rate(a2.id, "x", 1, "👍")
    stats = {s.model_version: s for s in repo.stats_by_version()}
    assert stats["a"].generations == 2 and stats["a"].ratings == 3
    assert stats["a"].mean_score == pytest.approx(1 / 3)
    assert stats["a"].positive_share == pytest.approx(2 / 3)
    assert stats["a"].raters == 2
    assert stats["b"].ratings == 0 and stats["b"].positive_share == 0.0
