"""Model lines in the admin services: the owners' switch, a line's versions promoted and rolled
back without touching the shared version, and the shared A/B kept away from a line's version."""

from __future__ import annotations

import pytest

from admin.base import AdminServices
from admin.errors import ExperimentRefused, Invalid, Unknown
from admin.lines import Lines
from admin.registry import Registry
from model.backends.fake import ScriptedBackend
from storage import (
    CuratedSampleRepository,
    Database,
    GenerationRepository,
    ModelVersionRepository,
    NewGeneration,
)
from tests.admin.conftest import build_services

KEY = "discord:42"


@pytest.fixture
def lines(services: AdminServices) -> Lines:
    assert isinstance(services.lines, Lines)
    return services.lines


def _adapters(versions: ModelVersionRepository, *names: str) -> None:
    shared = versions.active()
    assert shared is not None
    for name in names:
        versions.add(name, shared.path, "bootstrap", base_version=shared.name, line=KEY)


async def test_a_line_is_off_until_the_owners_enable_it(
    lines: Lines, versions: ModelVersionRepository
) -> None:
    _adapters(versions, "a-1")
    for refused in (
        lines.retrain("mod", KEY),
        lines.add("mod", KEY, ["text"]),
        lines.use("mod", KEY, "a-1"),
        lines.rollback("mod", KEY),
    ):
        with pytest.raises(Invalid, match="has no model line of its own"):
            await refused
    with pytest.raises(Invalid, match="PLATFORM:ID"):
        await lines.status("42")
    assert (await lines.status(KEY)).enabled is False
    record = await lines.allow("owner", KEY, enabled=True)
    assert record.own_line and not record.line_shares and record.updated_by == "owner"
    assert [s.key for s in await lines.every()] == [KEY]


async def test_a_lines_versions_switch_without_touching_the_shared_version(
    services: AdminServices, lines: Lines, versions: ModelVersionRepository
) -> None:
    registry = services.registry
    assert isinstance(registry, Registry) and isinstance(registry.backend, ScriptedBackend)
    _adapters(versions, "a-1", "a-2")
    versions.add("other", "/m/other", "bootstrap", line="discord:7")
    await lines.allow("owner", KEY, enabled=True)

    assert (await lines.use("mod", KEY, "a-1", force=True)).status == "active"
    assert (await lines.use("mod", KEY, "a-2", force=True)).name == "a-2"
    with pytest.raises(Invalid, match="not a version of discord:42's line"):
        await lines.use("mod", KEY, "other", force=True)
    with pytest.raises(Invalid, match="not a version of discord:42's line"):
        await lines.use("mod", KEY, "tiny-1", force=True)
    assert (await lines.rollback("mod", KEY)).name == "a-1"
    assert (await lines.status(KEY)).active.name == "a-1"  # type: ignore[union-attr]
    assert versions.active().name == "tiny-1"  # type: ignore[union-attr]
    assert registry.backend.swaps == []  # the engine's shared version never moved
    assert [v.name for v in await registry.versions()] == ["tiny-1"]

    with pytest.raises(ExperimentRefused, match="belongs to discord:42's model line"):
        await services.experiments.start("owner", "a-2", 0.5)


async def test_services_without_lines_say_so(db, model_dir, versions) -> None:  # type: ignore[no-untyped-def]
    built = build_services(db, model_dir, ScriptedBackend(model_version="tiny-1"))
    plain = AdminServices(
        built.curation,
        built.training,
        built.registry,
        built.reports,
        built.servers,
        built.experiments,
        built.reviews,
        built.fleet,
    )
    assert (await plain.lines.status(KEY)).enabled is False
    with pytest.raises(Invalid, match="not available"):
        await plain.lines.retrain("owner", KEY)
    await built.close()


async def test_a_lines_admins_review_their_servers_queued_outputs_only(
    lines: Lines, db: Database
) -> None:
    samples = CuratedSampleRepository(db)
    a_output, b_output = _rated(db, "42"), _rated(db, "7")
    why = {"up": 2, "down": 0}
    samples.apply_ratings({a_output: why, b_output: why}, auto_approve=False)
    await lines.allow("owner", KEY, enabled=True)
    [queued] = await lines.queue(KEY)
    assert queued.generation_id == a_output and queued.origin == KEY
    b_sample = next(s for s in samples.pending() if s.generation_id == b_output)
    with pytest.raises(Unknown, match="waits for review"):
        await lines.review("mod", KEY, b_sample.id, approve=True)  # another server's
    decided = await lines.review("mod", KEY, queued.id, approve=True)
    assert decided.status == "approved" and decided.reviewed_by == "mod"
    assert [s.generation_id for s in samples.active(KEY)] == [a_output]
    assert samples.active(None) == []  # B's output still waits; A's is A's only


def _rated(db: Database, guild: str) -> int:
    new = NewGeneration(
        platform="discord",
        user_id=f"author-{guild}",
        guild_id=guild,
        prompt=f"A prompt in {guild}.",
        output=" An output.",
        params={},
        seed=1,
        model_version="tiny-1",
        prompt_tokens=3,
        completion_tokens=3,
        latency_s=0.1,
    )
    generations = GenerationRepository(db)
    generation = generations.add(new).id
    for rater in ("r1", "r2"):
        generations.rate(generation, rater, 1, "👍")
    return generation
