"""Migration 0013 and what it enforces: at most one running experiment per model line (the
shared line too), whoever writes the table; a training run records its line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import MetaData, inspect
from sqlalchemy.exc import IntegrityError

from storage import (
    Database,
    ExperimentRepository,
    ExperimentRunning,
    RunStatus,
    TrainingRunRepository,
    current_revision,
    head_revision,
    upgrade,
)
from storage.migrate import downgrade

A, B = "discord:111", "discord:222"


def _insert(db: Database, line: str | None, status: str = "running") -> None:
    """A row as another process (or an older revision) writes it, past the repository."""
    tables = MetaData()
    tables.reflect(db.engine, only=["experiments"])
    values = {
        "control_version": "v1",
        "candidate_version": "v2",
        "candidate_share": 0.5,
        "status": status,
        "rule": {},
        "started_by": "x",
        "started_at": datetime.now(UTC),
    }
    if line is not None:
        values["line"] = line
    with db.engine.begin() as connection:
        connection.execute(tables.tables["experiments"].insert().values(**values))


def test_one_running_experiment_per_line_whoever_writes(db: Database) -> None:
    _insert(db, None)
    _insert(db, A)
    _insert(db, B)
    _insert(db, A, status="stopped")
    for line in (None, A):
        with pytest.raises(IntegrityError):
            _insert(db, line)
    experiments = ExperimentRepository(db)
    assert [e.line for e in experiments.every_running()] == [None, A, B]
    assert experiments.running(A).line == A and experiments.running().line is None  # type: ignore[union-attr]
    with pytest.raises(ExperimentRunning):
        experiments.start("v1", "v3", 0.5, {}, "mod", A)
    assert experiments.latest("discord:9") is None


def test_a_training_run_records_its_line(db: Database) -> None:
    runs = TrainingRunRepository(db)
    for line in (None, A):
        run = runs.create("manual", "x", RunStatus.RUNNING, line)
        runs.update(run.id, status=RunStatus.SUCCEEDED)
    assert runs.last_trained().line is None and runs.last_trained(A).line == A  # type: ignore[union-attr]
    assert runs.last_trained(B) is None


def test_0013_upgrades_a_running_experiment_and_downgrades(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'at-0012.db'}")
    upgrade(db.engine, "0012")
    _insert(db, None)  # as 0012 wrote it: no line
    upgrade(db.engine)
    assert current_revision(db.engine) == head_revision()
    experiments = ExperimentRepository(db)
    assert experiments.running() is not None and experiments.running().line is None  # type: ignore[union-attr]
    _insert(db, A)
    downgrade(db.engine, "0012")  # the line's experiment stops: the old index allows one
    assert "line" not in {c["name"] for c in inspect(db.engine).get_columns("experiments")}
    assert "line" not in {c["name"] for c in inspect(db.engine).get_columns("training_runs")}
    with db.engine.connect() as connection:
        statuses = [row[0] for row in connection.exec_driver_sql("SELECT status FROM experiments")]
    assert statuses == ["running", "stopped"]
    with pytest.raises(IntegrityError):
        _insert(db, None)  # one running experiment in all again
    upgrade(db.engine)
    db.dispose()
