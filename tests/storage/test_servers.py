"""Per-server settings and what they keep out of training."""

from __future__ import annotations

from storage import (
    CuratedSampleRepository,
    GenerationRepository,
    NewGeneration,
    ServerSettingsRecord,
    ServerSettingsRepository,
)


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
