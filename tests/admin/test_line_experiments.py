"""A/B experiments inside a server's model line: one runs per line beside the shared one, its
candidate is one of the line's versions, its members are the line's server's only, and the rule
promotes the winner within the line (the shared version never moves), audited in the line."""

from __future__ import annotations

import pytest

from admin.errors import ExperimentRefused
from bot.arms import Arms
from bot.chat import Origin
from bot.lines import LineServing
from model.backends.fake import ScriptedBackend
from storage import AuditRepository, Database, ModelVersionRepository, ServerSettingsRepository
from tests.admin.conftest import build_services
from tests.admin.test_experiments import backend, rate, service, versions  # noqa: F401

KEY = "discord:42"
GATE = {"baseline_version": "a-1", "baseline_eval_loss": 3.1}


@pytest.fixture
def line(versions: ModelVersionRepository) -> ModelVersionRepository:  # noqa: F811
    """discord:42's line: a-1 active; a-2 passes the gate against it."""
    versions.add("a-1", "/models/a-1", "bootstrap", base_version="tiny-1", line=KEY)
    versions.activate("a-1")
    metrics = {"eval_loss": 3.0, **GATE}
    versions.add(
        "a-2", "/models/a-2", "bootstrap", base_version="tiny-1", line=KEY, metrics=metrics
    )
    versions.add("b-1", "/models/b-1", "bootstrap", base_version="tiny-1", line="discord:7")
    return versions


async def test_a_line_runs_its_own_experiment_beside_the_shared_one(
    db: Database,
    line: ModelVersionRepository,
    backend: ScriptedBackend,  # noqa: F811
) -> None:
    experiments = service(db, backend)
    with pytest.raises(ExperimentRefused, match="not a version of discord:42's line"):
        await experiments.start("mod", "better", line=KEY)
    with pytest.raises(ExperimentRefused, match="belongs to discord:7's model line only"):
        await experiments.start("mod", "b-1", line=KEY)
    with pytest.raises(ExperimentRefused, match="a-1 is the active version already"):
        await experiments.start("mod", "a-1", line=KEY)
    with pytest.raises(ExperimentRefused, match="belongs to discord:42's model line only"):
        await experiments.start("owner", "a-2")  # the shared A/B never serves a line's version

    shared = await experiments.start("owner", "better")
    ours = await experiments.start("mod", "a-2", 0.5, line=KEY)
    assert (ours.line, ours.control.version, ours.candidate.version) == (KEY, "a-1", "a-2")
    with pytest.raises(ExperimentRefused, match="only one runs at a time in a line"):
        await experiments.start("mod", "a-2", line=KEY)
    assert (await experiments.status()).id == shared.id  # type: ignore[union-attr]
    assert (await experiments.status(KEY)).id == ours.id  # type: ignore[union-attr]
    assert await experiments.status("discord:7") is None
    assert set(backend.resident_versions) == {"tiny-1", "better", "a-2"}

    arms = [await experiments.arm_for("discord", str(user), KEY) for user in range(200)]
    assert {a.experiment_id for a in arms if a} == {ours.id}
    assert {a.version for a in arms if a} == {"a-1", "a-2"}
    assert await experiments.arm_for("discord", "1", "discord:7") is None
    assert (await experiments.arm_for("discord", "1")).experiment_id == shared.id  # type: ignore[union-attr]

    stopped = await experiments.stop("mod", KEY)
    assert stopped.status == "stopped" and (await experiments.status()).running  # type: ignore[union-attr]
    entries = [e for e in reversed(AuditRepository(db).recent()) if e["platform"] == "ab"]
    assert [(e["action"], e["scope"], e["server_id"]) for e in entries] == [
        ("ab start", "global", None),
        ("ab start", "line", KEY),
        ("ab stop", "line", KEY),
    ]


async def test_the_rule_promotes_a_lines_winner_within_the_line(
    db: Database,
    line: ModelVersionRepository,
    backend: ScriptedBackend,  # noqa: F811
) -> None:
    experiments = service(db, backend)
    started = await experiments.start("mod", "a-2", line=KEY)
    rate(db, started.id, "control", 4, 8)
    rate(db, started.id, "candidate", 10, 2)

    ended = await experiments.evaluate(started.id)

    assert ended is not None and ended.status == "promoted" and ended.line == KEY
    assert line.active(KEY).name == "a-2"  # type: ignore[union-attr]
    assert line.active().name == "tiny-1"  # type: ignore[union-attr]
    assert backend.swaps == [] and "a-2" in backend.resident_versions  # it serves the line now
    entry = AuditRepository(db).recent(1)[0]
    assert (entry["action"], entry["scope"], entry["server_id"]) == ("ab promoted", "line", KEY)
    assert await experiments.arm_for("discord", "1", KEY) is None


async def test_a_lines_members_get_its_experiments_arms_and_no_one_else_does(
    db: Database,
    line: ModelVersionRepository,
    backend: ScriptedBackend,  # noqa: F811
) -> None:
    experiments = service(db, backend)
    ServerSettingsRepository(db).update("discord", "42", "owner", own_line=True)
    started = await experiments.start("mod", "a-2", line=KEY)
    serving, arms = LineServing(db, backend), Arms(experiments)

    chosen = {}
    for user in range(40):
        version, arm = await serving.choose(Origin("discord", str(user), guild_id="42"), arms)
        assert arm is not None and arm.experiment_id == started.id and arm.version == version
        chosen[version] = chosen.get(version, 0) + 1
    assert set(chosen) == {"a-1", "a-2"}
    for user in range(40):  # another server, without a line: the shared version, no arm
        assert await serving.choose(Origin("discord", str(user), guild_id="7"), arms) == (
            None,
            None,
        )
    await experiments.stop("mod", KEY)


async def test_taking_a_line_back_stops_its_experiment(
    db: Database,
    line: ModelVersionRepository,
    model_dir,  # type: ignore[no-untyped-def]
) -> None:
    services = build_services(db, model_dir, ScriptedBackend(model_version="tiny-1"))
    await services.lines.allow("owner", KEY, enabled=True)
    await services.lines.allow("owner", KEY, enabled=False)  # nothing ran: nothing to stop
    await services.lines.allow("owner", KEY, enabled=True)
    started = await services.lines.ab_start("mod", KEY, "a-2")
    await services.lines.allow("owner", KEY, enabled=False)
    ended = await services.experiments.status(KEY)
    assert ended is not None and ended.id == started.id and ended.status == "stopped"
    assert ended.ended_by == "owner"
    await services.close()
