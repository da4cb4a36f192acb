"""Experiments: per-arm counts (self-ratings and fresh Discord accounts do not count), one
running at a time (the repository and the database both refuse a second), and they survive a
reopened database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from storage import (
    ArmCounts,
    Database,
    ExperimentRepository,
    ExperimentRunning,
    GenerationRepository,
    NewGeneration,
    upgrade,
)
from storage.rating_rule import DISCORD_EPOCH_MS

RULE = {"rule": "beta-binomial", "promote_probability": 0.998}


def served(repo: GenerationRepository, experiment_id: int | None, arm: str | None, author="a"):
    return repo.add(
        NewGeneration(
            platform="web",
            user_id=author,
            prompt="p",
            output="o",
            params={},
            seed=1,
            model_version="v2" if arm == "candidate" else "v1",
            prompt_tokens=1,
            completion_tokens=1,
            latency_s=0.1,
            experiment_id=experiment_id,
            arm=arm,
        )
    )


def test_counts_per_arm_count_each_rating_row_but_never_self_ratings(db: Database) -> None:
    experiments, generations = ExperimentRepository(db), GenerationRepository(db)
    experiment = experiments.start("v1", "v2", 0.5, RULE, "owner")
    control = [served(generations, experiment.id, "control") for _ in range(3)]
    candidate = served(generations, experiment.id, "candidate", author="carol")
    outside = served(generations, None, None)  # served before the experiment: not counted
    generations.rate(control[0].id, "r1", 1, "👍")
    generations.rate(control[0].id, "r2", -1, "👎")  # two rows on one output: two ratings
    generations.rate(control[1].id, "r1", -1, "👎")
    generations.rate(candidate.id, "r1", 1, "👍")
    generations.rate(candidate.id, "r2", 1, "👍")
    generations.rate(candidate.id, "carol", 1, "👍")  # its author's own: never counts
    generations.rate(outside.id, "r1", 1, "👍")

    counts = experiments.counts(experiment.id)

    assert counts["control"] == ArmCounts(generations=3, ratings=3, up=1, down=2)
    assert counts["candidate"] == ArmCounts(generations=1, ratings=2, up=2, down=0)
    assert experiments.counts(experiment.id + 1)["candidate"] == ArmCounts()


def test_ratings_from_discord_accounts_younger_than_the_limit_do_not_count(db: Database) -> None:
    experiments, generations = ExperimentRepository(db), GenerationRepository(db)
    experiment = experiments.start("v1", "v2", 0.5, RULE, "owner")
    output = generations.add(
        NewGeneration(
            platform="discord",
            user_id="1",
            prompt="p",
            output="o",
            params={},
            seed=1,
            model_version="v2",
            prompt_tokens=1,
            completion_tokens=1,
            latency_s=0.1,
            experiment_id=experiment.id,
            arm="candidate",
        )
    )
    made_yesterday = datetime.now(UTC) - timedelta(days=1)
    fresh = str((int(made_yesterday.timestamp() * 1000) - DISCORD_EPOCH_MS) << 22)
    generations.rate(output.id, fresh, 1, "👍")
    generations.rate(output.id, "80351110224678912", 1, "👍")  # an account from 2015

    assert experiments.counts(experiment.id, min_account_days=7)["candidate"].ratings == 1
    assert experiments.counts(experiment.id, min_account_days=0)["candidate"].ratings == 2


def test_only_one_experiment_runs_at_a_time(db: Database) -> None:
    experiments = ExperimentRepository(db)
    first = experiments.start("v1", "v2", 0.5, RULE, "owner")
    with pytest.raises(ExperimentRunning):
        experiments.start("v1", "v3", 0.5, RULE, "owner")
    # the database refuses it too, whoever writes the table
    with pytest.raises(IntegrityError), db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO experiments (control_version, candidate_version, candidate_share,"
                " status, rule, started_by, started_at)"
                " VALUES ('v1', 'v3', 0.5, 'running', '{}', 'x', '2026-01-01')"
            )
        )
    ended = experiments.finish(first.id, "stopped", "owner", {"decision": "continue"})
    assert ended is not None and ended.status == "stopped" and ended.ended_by == "owner"
    assert experiments.finish(first.id, "promoted", "ab-rule", {}) is None  # it ended already
    second = experiments.start("v1", "v3", 0.2, RULE, "owner")
    assert experiments.running() == second
    assert experiments.latest() == second


def test_an_experiment_survives_a_reopened_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    db = Database(url)
    upgrade(db.engine)
    started = ExperimentRepository(db).start("v1", "v2", 0.3, RULE, "owner")
    served(GenerationRepository(db), started.id, "candidate")
    db.dispose()

    reopened = Database(url)
    try:
        upgrade(reopened.engine)
        experiments = ExperimentRepository(reopened)
        running = experiments.running()
        assert running == started
        assert running is not None and running.rule == RULE and running.candidate_share == 0.3
        assert experiments.counts(running.id)["candidate"].generations == 1
    finally:
        reopened.dispose()


def test_an_ended_experiment_keeps_the_numbers_it_ended_on(db: Database) -> None:
    experiments = ExperimentRepository(db)
    experiment = experiments.start("v1", "v2", 0.5, RULE, "owner")
    outcome = {"decision": "promote", "probability": 0.999, "candidate": {"up": 9}}
    experiments.finish(experiment.id, "promoted", "ab-rule", outcome)
    amended = experiments.amend(experiment.id, "stopped", {"refused": "the gate said no"})
    assert amended.status == "stopped"
    assert amended.outcome == {**outcome, "refused": "the gate said no"}
    assert experiments.running() is None and experiments.latest() == amended
    with pytest.raises(ValueError, match="how an experiment ends"):
        experiments.finish(experiment.id, "running", "x", {})
