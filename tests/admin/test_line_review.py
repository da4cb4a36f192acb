"""The blind review inside a server's model line: pairs of the line's versions only, on that
server's members' prompts (or the fixed ones), verdicts only on the line's items, win rates of
the line's pairs only; through `Lines`, once the owners enabled the line, and audited."""

from __future__ import annotations

import random

import pytest

from admin.errors import Invalid, ReviewUnavailable, Unknown
from admin.lines import Lines
from admin.review import Reviews
from storage import (
    AuditRepository,
    Database,
    GenerationRepository,
    ModelVersionRepository,
    NewGeneration,
)
from tests.admin.conftest import build_services
from tests.admin.test_review import backend, register, says  # noqa: F401

KEY = "discord:42"


def prompt_in(db: Database, guild: str | None, prompt: str) -> None:
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
        guild_id=guild,
    )
    GenerationRepository(db).add(new)


async def test_a_lines_admins_review_their_own_versions_on_their_servers_prompts(
    db: Database,
    model_dir,  # type: ignore[no-untyped-def]
    backend,  # noqa: F811
) -> None:
    register(db, "v1", "v2")
    versions = ModelVersionRepository(db)
    versions.add("a-1", "/models/a-1", "bootstrap", base_version="v1", line=KEY)
    versions.add("a-2", "/models/a-2", "bootstrap", base_version="v1", line=KEY)
    versions.activate("a-1")
    prompt_in(db, "42", "What the lighthouse keeper saw")
    prompt_in(db, "7", "Another server's secret prompt")
    services = build_services(db, model_dir, backend)
    lines = services.lines
    assert isinstance(lines, Lines) and isinstance(services.reviews, Reviews)
    services.reviews.recent_share = 1.0  # always a member's prompt when the server has one
    services.reviews._rng = random.Random(5)

    with pytest.raises(Invalid, match="has no model line of its own"):
        await lines.review_next("mod", KEY)
    await lines.allow("owner", KEY, enabled=True)
    with pytest.raises(Unknown, match="no model version named 'v2'"):
        await lines.review_next("mod", KEY, "v2")  # a shared version is not the line's

    shown = await lines.review_next("mod", KEY)
    assert shown.prompt == "What the lighthouse keeper saw" and shown.source == "recent"
    sides = {shown.output_a.split()[0], shown.output_b.split()[0]}
    assert sides == {"[a-1", "[a-2"}
    shared = await services.reviews.next_item("owner")  # the owners' pair: shared versions
    with pytest.raises(Unknown, match=f"no review pair #{shared.id} of {KEY}'s line"):
        await lines.review_vote("mod", KEY, shared.id, "a")

    item = await lines.review_vote("mod", KEY, shown.id, "a")
    assert item.winner == item.version_a
    [rate] = await lines.review_stats(KEY)
    assert {rate.first, rate.second} == {"a-1", "a-2"} and rate.judged == 1
    await services.reviews.record("owner", shared.id, "tie")
    assert len(await services.reviews.win_rates()) == 2  # the owners see every pair
    assert len(await lines.review_stats(KEY)) == 1  # the line its own

    entry = AuditRepository(db).recent(1)[0]
    assert (entry["action"], entry["scope"], entry["server_id"]) == ("line review", "line", KEY)
    await services.close()


async def test_a_line_with_one_version_says_to_train_another(
    db: Database,
    model_dir,  # type: ignore[no-untyped-def]
    backend,  # noqa: F811
) -> None:
    register(db, "v1", "v2")
    ModelVersionRepository(db).add("a-1", "/m/a-1", "bootstrap", base_version="v1", line=KEY)
    services = build_services(db, model_dir, backend)
    await services.lines.allow("owner", KEY, enabled=True)
    with pytest.raises(ReviewUnavailable, match="second version of this line"):
        await services.lines.review_next("mod", KEY)
    await services.close()
