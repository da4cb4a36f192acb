"""The A/B experiments service: sticky assignment, refusals, and the rule's three endings
changing the registry and the backend, every step audited."""

from __future__ import annotations

from collections import Counter

import pytest

from admin.auth import Actor, AdminGate, AdminPolicy, NotAuthorized, Scope, action_scope
from admin.config import ABConfig
from admin.errors import ExperimentRefused
from admin.experiments import Experiments
from admin.registry import Registry
from model.backends.fake import ScriptedBackend
from model.backends.idle import IdleBackend
from storage import (
    AuditRepository,
    Database,
    ExperimentRepository,
    GenerationRepository,
    ModelVersionRepository,
    NewGeneration,
)

QUICK = ABConfig(promote_probability=0.95, retire_probability=0.95, min_ratings=10, max_ratings=40)


@pytest.fixture
def versions(db: Database) -> ModelVersionRepository:
    """tiny-1 active; better (its held-out loss passes the gate) and worse (it does not)."""
    repo = ModelVersionRepository(db)
    repo.add("tiny-1", "/models/tiny-1", "bootstrap")
    repo.activate("tiny-1")
    for name, loss in (("better", 3.0), ("worse", 4.0)):
        metrics = {"eval_loss": loss, "baseline_version": "tiny-1", "baseline_eval_loss": 3.1}
        repo.add(name, f"/models/{name}", "bootstrap", parent="tiny-1", metrics=metrics)
    return repo


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(model_version="tiny-1")


def service(db: Database, backend, config: ABConfig = QUICK, serves: bool = True) -> Experiments:
    registry = Registry(db, 0.02, backend)
    return Experiments(db, registry, backend, config, serves=serves)


def rate(db: Database, experiment_id: int, arm: str, up: int, down: int) -> None:
    """`up` + `down` outputs of `arm`, each rated once by someone other than its author."""
    generations = GenerationRepository(db)
    for index in range(up + down):
        output = generations.add(
            NewGeneration(
                platform="web",
                user_id="author",
                prompt="p",
                output="o",
                params={},
                seed=index,
                model_version=arm,
                prompt_tokens=1,
                completion_tokens=1,
                latency_s=0.1,
                experiment_id=experiment_id,
                arm=arm,
            )
        )
        generations.rate(output.id, f"rater-{index}", 1 if index < up else -1, "👍")


def actions(db: Database) -> list[str]:
    return [entry["action"] for entry in reversed(AuditRepository(db).recent())]


async def test_members_are_assigned_stickily_near_the_share(db, versions, backend) -> None:
    experiments = service(db, backend)
    await experiments.start("owner", "better", 0.3)
    arms = [await experiments.arm_for("discord", str(user)) for user in range(4000)]
    counts = Counter(a.arm for a in arms if a is not None)
    assert 0.27 < counts["candidate"] / 4000 < 0.33
    again = [await experiments.arm_for("discord", str(user)) for user in range(200)]
    assert again == arms[:200]  # the same member, the same arm
    assert {a.version for a in arms if a and a.arm == "candidate"} == {"better"}
    assert {a.version for a in arms if a and a.arm == "control"} == {"tiny-1"}
    # another process on the same database assigns everyone alike
    elsewhere = service(db, ScriptedBackend(model_version="tiny-1"), serves=False)
    assert [await elsewhere.arm_for("discord", str(user)) for user in range(200)] == arms[:200]


async def test_start_loads_the_candidate_and_is_audited(db, versions, backend) -> None:
    status = await service(db, backend).start("owner", "better")
    assert backend.resident_versions == ("tiny-1", "better")
    assert status.running and status.control.version == "tiny-1"
    assert status.candidate.version == "better" and status.candidate.share == 0.5
    assert status.decision == "continue" and status.rule["min_ratings"] == 10
    assert status.candidate.interval == pytest.approx((0.025, 0.975))
    entry = AuditRepository(db).recent(1)[0]
    assert (entry["actor"], entry["action"], entry["scope"]) == ("owner", "ab start", "global")
    assert entry["detail"]["candidate"] == "better" and entry["detail"]["share"] == 0.5


async def test_what_cannot_be_started_is_refused_with_what_to_do(db, versions, backend) -> None:
    experiments = service(db, backend)
    with pytest.raises(ExperimentRefused, match="tiny-1 is the active version already"):
        await experiments.start("owner", "tiny-1")
    with pytest.raises(LookupError, match="no model version named 'nope'; the model list"):
        await experiments.start("owner", "nope")
    with pytest.raises(ExperimentRefused, match="between 0 and 1"):
        await experiments.start("owner", "better", 1.0)
    single = service(db, IdleBackend("tiny-1"))  # a serving backend that keeps one version
    with pytest.raises(ExperimentRefused, match=r"keeps one version loaded.*local backend can"):
        await single.start("owner", "better")
    await experiments.start("owner", "better")
    with pytest.raises(ExperimentRefused, match=r"#1 \(tiny-1 against better\) is still running"):
        await experiments.start("owner", "worse")
    assert backend.resident_versions == ("tiny-1", "better")  # nothing else was loaded


async def test_a_confident_win_promotes_the_candidate_by_hot_swap(db, versions, backend) -> None:
    experiments = service(db, backend)
    started = await experiments.start("owner", "better")
    rate(db, started.id, "control", 4, 8)
    assert await experiments.evaluate(started.id) is None  # each arm needs 10 ratings
    rate(db, started.id, "candidate", 10, 2)

    ended = await experiments.evaluate(started.id)

    assert ended is not None and ended.status == "promoted" and ended.decision == "promote"
    assert ended.probability >= 0.95 and ended.ended_by == "ab-rule"
    assert ended.candidate.up == 10 and ended.control.ratings == 12
    assert versions.active().name == "better"
    assert backend.swaps == [("better", "/models/better")] and backend.model_version == "better"
    assert actions(db)[-1] == "ab promoted"
    assert await experiments.arm_for("web", "anyone") is None  # everyone gets the new active
    assert (await experiments.status()) == ended  # the numbers it ended on


async def test_a_confident_loss_retires_and_unloads_the_candidate(db, versions, backend) -> None:
    experiments = service(db, backend)
    started = await experiments.start("owner", "better")
    rate(db, started.id, "control", 10, 2)
    rate(db, started.id, "candidate", 3, 9)

    ended = await experiments.evaluate()

    assert ended is not None and ended.status == "retired"
    assert versions.get("better").status == "retired" and versions.active().name == "tiny-1"
    assert backend.resident_versions == ("tiny-1",) and backend.swaps == []
    assert actions(db)[-1] == "ab retired"


async def test_no_difference_at_the_maximum_unloads_and_changes_nothing(
    db, versions, backend
) -> None:
    experiments = service(db, backend)
    started = await experiments.start("owner", "better")
    rate(db, started.id, "control", 20, 20)
    rate(db, started.id, "candidate", 21, 19)

    ended = await experiments.evaluate()

    assert ended is not None and ended.status == "no_difference"
    assert "no confident difference after 40 ratings per arm" in ended.reason
    assert versions.get("better").status == "candidate" and versions.active().name == "tiny-1"
    assert backend.resident_versions == ("tiny-1",)
    assert actions(db)[-1] == "ab no_difference"
    assert await experiments.evaluate() is None  # nothing runs any more


async def test_a_winner_the_gate_refuses_ends_the_experiment_unpromoted(
    db, versions, backend
) -> None:
    experiments = service(db, backend)
    started = await experiments.start("owner", "worse")  # its held-out loss fails the gate
    rate(db, started.id, "control", 4, 8)
    rate(db, started.id, "candidate", 10, 2)

    ended = await experiments.evaluate()

    assert ended is not None and ended.status == "stopped" and ended.decision == "promote"
    assert "not promoted" in ended.reason and "held-out loss" in ended.reason
    assert versions.active().name == "tiny-1" and backend.resident_versions == ("tiny-1",)
    assert actions(db)[-1] == "ab promotion refused"


async def test_stop_ends_it_undecided_and_unloads(db, versions, backend) -> None:
    experiments = service(db, backend)
    with pytest.raises(ExperimentRefused, match="No experiment is running"):
        await experiments.stop("owner")
    started = await experiments.start("owner", "better")
    rate(db, started.id, "candidate", 2, 1)
    stopped = await experiments.stop("owner")
    assert stopped.status == "stopped" and stopped.ended_by == "owner"
    assert stopped.candidate.ratings == 3 and stopped.reason == "stopped by owner"
    assert backend.resident_versions == ("tiny-1",)
    assert actions(db)[-2:] == ["ab start", "ab stop"]
    assert ExperimentRepository(db).running() is None


async def test_a_serving_process_notices_an_experiment_started_elsewhere(
    db, versions, backend
) -> None:
    serving = service(db, backend, ABConfig(refresh_s=0.0))
    assert await serving.arm_for("web", "u") is None
    cli = service(db, IdleBackend("tiny-1"), serves=False)  # `gpt2bot ab start`
    await cli.start("cli", "better")
    assert await serving.arm_for("web", "u") is not None
    await serving.settled()  # the candidate loads in the background
    assert backend.resident_versions == ("tiny-1", "better")
    await cli.stop("cli")
    assert await serving.arm_for("web", "u") is None
    await serving.settled()
    assert backend.resident_versions == ("tiny-1",)


async def test_starting_and_stopping_are_for_owners_and_status_for_any_admin(db) -> None:
    assert action_scope("ab start") is Scope.GLOBAL and action_scope("ab stop") is Scope.GLOBAL
    assert action_scope("discord ab status") is Scope.READ
    gate = AdminGate(AdminPolicy(owner_ids=("owner",)), db)
    server_admin = Actor("discord", "mod", server_id="g1", server_admin=True)
    with pytest.raises(NotAuthorized, match="only the bot's owners"):
        await gate.authorize(server_admin, "ab start", {"version": "better"})
    assert await gate.authorize(server_admin, "ab status") is Scope.READ
    assert await gate.authorize(Actor("discord", "owner"), "ab start") is Scope.GLOBAL
    refused = AuditRepository(db).recent()[-1]
    assert (refused["action"], refused["allowed"]) == ("ab start", False)
