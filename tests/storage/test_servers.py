"""Per-server settings and what they keep out of training."""

from __future__ import annotations

import time

from storage import (
    CuratedSampleRepository,
    Database,
    GenerationRepository,
    NewGeneration,
    ServerSettingsRecord,
    ServerSettingsRepository,
)
from storage.db import RecentReads


def _generation(db, guild: str, user: str = "u1") -> int:
    new = NewGeneration(
        platform="discord",
        user_id=user,
        guild_id=guild,
        prompt=f"Prompt in {guild}.",
        output=" An output.",
        params={},
        seed=1,
        model_version="v1",
        prompt_tokens=3,
        completion_tokens=3,
        latency_s=0.1,
    )
    return GenerationRepository(db).add(new).id


def test_a_server_without_a_row_has_the_defaults_and_updates_stick(db):
    servers = ServerSettingsRepository(db)
    assert servers.get("discord", "g1") == ServerSettingsRecord("discord", "g1")
    saved = servers.update("discord", "g1", "mod", allowed_channels=("c1",), cooldown_s=2.5)
    assert (saved.allowed_channels, saved.cooldown_s, saved.updated_by) == (("c1",), 2.5, "mod")
    assert servers.get("discord", "g1").allowed_channels == ("c1",)
    assert servers.get("slack", "g1").allowed_channels == ()  # per platform


def test_a_server_that_opts_out_keeps_its_ratings_out_of_training(db):
    repository, samples = GenerationRepository(db), CuratedSampleRepository(db)
    kept, opted_out = _generation(db, "g-in"), _generation(db, "g-out")
    for generation in (kept, opted_out):
        for rater in ("a", "b"):
            repository.rate(generation, rater, 1, "👍")
    assert samples.sync_from_ratings(2, 2) == (2, 0)

    ServerSettingsRepository(db).update("discord", "g-out", "mod", ratings_train=False)
    assert samples.sync_from_ratings(2, 2) == (0, 1)  # its sample leaves the dataset
    assert [s.generation_id for s in samples.active()] == [kept]


def test_settings_read_lately_are_kept_until_this_process_writes_or_they_age(db):
    servers, other = ServerSettingsRepository(db), ServerSettingsRepository(db)
    assert servers.recent("discord", "g1") is None  # never read
    servers.get("discord", "g1")
    assert servers.recent("discord", "g1") == ServerSettingsRecord("discord", "g1")
    other.update("discord", "g1", "mod", cooldown_s=9.0)  # this process: forgotten at once
    assert servers.recent("discord", "g1") is None
    assert servers.get("discord", "g1").cooldown_s == 9.0

    elsewhere = Database(db.url)  # another process on the same database
    ServerSettingsRepository(elsewhere).update("discord", "g1", "mod", cooldown_s=1.0)
    elsewhere.dispose()
    assert servers.recent("discord", "g1").cooldown_s == 9.0  # trusted for RECENT_READS_TTL_S
    db.recent.ttl_s = 0.0
    time.sleep(0.01)
    assert servers.recent("discord", "g1") is None  # aged: read again
    assert servers.get("discord", "g1").cooldown_s == 1.0


def test_a_read_that_raced_a_write_is_not_kept():
    recent = RecentReads()
    before = recent.writes()  # a read starts ...
    recent.forget("key")  # ... a write lands ...
    recent.put("key", "what the read saw", before)  # ... and the read ends
    assert recent.get("key") is None
    recent.put("key", "read after the write", recent.writes())
    assert recent.get("key") == "read after the write"
