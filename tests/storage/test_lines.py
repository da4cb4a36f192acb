"""Model lines in storage: one active version per line, and training data taken per line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import MetaData, inspect

from storage import (
    CuratedSampleRepository,
    Database,
    GenerationRepository,
    ModelVersionRepository,
    NewGeneration,
    ServerSettingsRepository,
    current_revision,
    head_revision,
    upgrade,
)
from storage.migrate import downgrade
from storage.servers import parse_server_key, server_key
from tests.storage.test_migrations import rated_generation

A, B = "discord:111", "discord:222"


def _rated(db: Database, guild: str, text: str) -> int:
    new = NewGeneration(
        platform="discord",
        user_id=f"author-{text}",
        guild_id=guild,
        prompt=f"{text} prompt.",
        output=f" {text} output.",
        params={},
        seed=1,
        model_version="v1",
        prompt_tokens=3,
        completion_tokens=3,
        latency_s=0.1,
    )
    generations = GenerationRepository(db)
    generation = generations.add(new).id
    for rater in ("r1", "r2"):
        generations.rate(generation, rater, 1, "👍")
    return generation


def test_each_line_has_its_own_active_version_and_rollback(db):
    versions = ModelVersionRepository(db)
    versions.add("shared-1", "/m/s1", "gpt2")
    versions.activate("shared-1")
    for name in ("a-1", "a-2"):
        versions.add(name, f"/m/{name}", "gpt2", base_version="shared-1", line=A)
        versions.activate(name)
    assert versions.active().name == "shared-1"  # the shared line is untouched
    assert versions.active(A).name == "a-2"
    assert versions.active(B) is None
    assert versions.previous_active(A).name == "a-1"
    assert versions.previous_active() is None
    assert [v.name for v in versions.in_line(A)] == ["a-1", "a-2"]
    assert [v.name for v in versions.in_line()] == ["shared-1"]
    assert versions.get("a-1").status == "retired" and versions.get("a-2").line == A


def test_a_line_trains_on_its_own_texts_and_the_shared_line_on_the_rest(db):
    samples, servers = CuratedSampleRepository(db), ServerSettingsRepository(db)
    samples.add_many(["owners' text"], "owner")
    samples.add_many(["A's file text"], "owner", origin=A)
    a_rated, b_rated = _rated(db, "111", "A-rated"), _rated(db, "222", "B-rated")
    samples.sync_from_ratings(2, 2)
    origins = {s.text: s.origin for s in samples.active()}
    assert origins["A-rated prompt. A-rated output."] == A  # a rated output's server

    def texts(line: str | None) -> set[str]:
        return {s.text.split()[0] for s in samples.active(line)}

    # no line enabled yet: the shared line trains on everything
    assert texts(None) == {"owners'", "A's", "A-rated", "B-rated"}
    servers.update("discord", "111", "owner", own_line=True)
    assert texts(None) == {"owners'", "B-rated"}  # A's texts no longer reach the shared model
    assert texts(A) == {"A's", "A-rated"}
    assert texts(B) == {"B-rated"}  # B's line (if enabled) would see none of A's
    assert {r.generation_id for r in samples.rating_rows(None)} == {b_rated}
    assert {r.generation_id for r in samples.rating_rows(A)} == {a_rated}
    assert samples.sync_from_ratings(2, 2) == (0, 0)  # the sync still covers every server

    servers.update("discord", "111", "owner", line_shares=True)  # the owners say so
    assert texts(None) == {"owners'", "A's", "A-rated", "B-rated"}


def test_server_keys_parse_and_refuse_clearly():
    assert parse_server_key(server_key("discord", "1234")) == ("discord", "1234")
    assert parse_server_key(" slack:T01 ") == ("slack", "T01")
    for bad in ("1234", "discord:", ":1234", "dis cord:1"):
        with pytest.raises(ValueError, match="PLATFORM:ID"):
            parse_server_key(bad)


def test_0012_adds_lines_and_fills_in_rated_texts_origin_and_downgrades(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'at-0011.db'}")
    upgrade(db.engine, "0011")
    generation = rated_generation(db, guild_id="555", redacted=False, hidden=False)
    tables = MetaData()
    tables.reflect(db.engine)
    with db.engine.begin() as connection:
        connection.execute(
            tables.tables["curated_samples"]
            .insert()
            .values(
                text="po",
                source="rating",
                generation_id=generation,
                added_by="ratings",
                active=True,
                status="approved",
                created_at=datetime.now(UTC),
            )
        )
    upgrade(db.engine)
    assert current_revision(db.engine) == head_revision()
    assert [s.origin for s in CuratedSampleRepository(db).active()] == ["cli:555"]
    assert ServerSettingsRepository(db).get("discord", "1").own_line is False
    downgrade(db.engine, "0011")
    assert "line" not in {c["name"] for c in inspect(db.engine).get_columns("model_versions")}
    assert "origin" not in {c["name"] for c in inspect(db.engine).get_columns("curated_samples")}
    db.dispose()
