import os
from datetime import UTC, datetime

import pytest
from sqlalchemy import MetaData, inspect, text

from storage import (
    Database,
    GenerationRepository,
    NewGeneration,
    current_revision,
    head_revision,
    upgrade,
)

TABLES = {
    "conversations",
    "generations",
    "ratings",
    "model_versions",
    "curated_samples",
    "training_runs",
    "admin_audit",
    "leases",
    "experiments",
}


def test_an_empty_database_upgrades_to_head(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'nested' / 'fresh.db'}")  # folder is created
    upgrade(db.engine)
    assert current_revision(db.engine) == head_revision()
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    upgrade(db.engine)  # idempotent: a second start changes nothing
    db.dispose()


def rated_generation(db: Database, **columns: object) -> int:
    """A generation with one 👍, written into the tables as the database's revision has them
    (`columns`: those that revision adds); its id."""
    tables = MetaData()
    tables.reflect(db.engine)
    now = datetime.now(UTC)
    with db.engine.begin() as connection:
        conversation = connection.execute(
            tables.tables["conversations"]
            .insert()
            .values(platform="cli", channel_id=None, user_id="u", created_at=now)
        ).inserted_primary_key[0]
        generation = connection.execute(
            tables.tables["generations"]
            .insert()
            .values(
                conversation_id=conversation,
                kind="new",
                platform="cli",
                user_id="u",
                prompt="p",
                output="o",
                params={},
                seed=1,
                sample_index=0,
                model_version="v1",
                prompt_tokens=1,
                completion_tokens=1,
                latency_s=0.1,
                prompt_truncated=False,
                created_at=now,
                **columns,
            )
        ).inserted_primary_key[0]
        connection.execute(
            tables.tables["ratings"]
            .insert()
            .values(
                generation_id=generation,
                rater_id="r",
                score=1,
                emoji="👍",
                created_at=now,
                updated_at=now,
            )
        )
    return int(generation)


def test_an_older_revision_upgrades_and_keeps_its_data(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(db.engine, "0001")
    assert "curated_samples" not in inspect(db.engine).get_table_names()
    generation = rated_generation(db)  # as the old version wrote it
    upgrade(db.engine)
    assert current_revision(db.engine) == head_revision()
    upgraded = GenerationRepository(db).get(generation)
    assert upgraded.output == "o" and upgraded.prompt == "p"
    # SQLite rebuilds altered tables by copy and drop: the drop must not cascade to ratings
    assert [(r.rater_id, r.score) for r in upgraded.ratings] == [("r", 1)]
    db.dispose()


def test_0007_adds_experiments_and_keeps_every_rating(tmp_path):
    """On SQLite the batch operations copy `generations`; the copy's drop must not cascade."""
    db = Database(f"sqlite:///{tmp_path / 'at-0006.db'}")
    upgrade(db.engine, "0006")
    generation = rated_generation(db, redacted=False, hidden=False)  # as 0006 wrote them
    upgrade(db.engine)
    assert current_revision(db.engine) == head_revision()
    upgraded = GenerationRepository(db).get(generation)
    assert [r.rater_id for r in upgraded.ratings] == ["r"]
    assert upgraded.experiment_id is None and upgraded.arm is None
    keys = inspect(db.engine).get_foreign_keys("generations")
    assert {
        "referred_table": "experiments",
        "constrained_columns": ["experiment_id"],
    }.items() <= next(k for k in keys if k["referred_table"] == "experiments").items()
    db.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(db):
    with db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL not set")
def test_postgresql_by_url():
    db = Database(os.environ["TEST_DATABASE_URL"])
    upgrade(db.engine)
    repo = GenerationRepository(db)
    stored = repo.add(
        NewGeneration(
            platform="cli",
            user_id="u",
            prompt="p",
            output="o",
            params={"top_k": 5},
            seed=2**62,
            model_version="v1",
            prompt_tokens=1,
            completion_tokens=1,
            latency_s=0.1,
        )
    )
    repo.rate(stored.id, "r", 1, "👍")
    assert repo.get(stored.id).ratings[0].score == 1
    assert repo.get(stored.id).seed == 2**62
    db.dispose()
