import json

import pytest

from storage import NotFound, RunStatus, TrainingRunRepository


def test_a_run_moves_from_queued_to_a_final_status(db):
    runs = TrainingRunRepository(db)
    run = runs.create("manual", "admin")
    assert run.status is RunStatus.QUEUED and run.finished_at is None
    assert [r.id for r in runs.running()] == [run.id]
    runs.update(run.id, status="running")
    assert runs.get(run.id).finished_at is None
    done = runs.update(run.id, status=RunStatus.SUCCEEDED, eval_after={"promoted": True})
    assert done.status == "succeeded" and done.finished_at is not None
    assert runs.running() == [] and runs.last_trained().id == run.id


def test_statuses_read_back_as_the_plain_strings_stored(db):
    run = TrainingRunRepository(db).create("schedule", "scheduler", "skipped")
    assert run.status == "skipped" and f"{run.status}" == "skipped"
    assert json.dumps({"status": run.status}) == '{"status": "skipped"}'
    assert {status.value for status in RunStatus} == {
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "skipped",
    }


def test_a_record_says_whether_its_model_was_promoted(db):
    runs = TrainingRunRepository(db)
    run = runs.create("manual", "admin", "running")
    assert run.promoted is None and run.eta_s is None  # eta is live, never stored
    assert runs.update(run.id, eval_after={"promoted": False}).promoted is False
    assert runs.update(run.id, eval_after={"promoted": True}).promoted is True


def test_losses_append_and_summaries_list_newest_first(db):
    runs = TrainingRunRepository(db)
    first, second = runs.create("manual", "a"), runs.create("manual", "b")
    runs.append_losses(first.id, [{"step": 1, "loss": 3.0}], 0.5)
    runs.append_losses(first.id, [{"step": 2, "loss": 2.5}], 1.0)
    summaries = runs.summaries()
    assert [s.id for s in summaries] == [second.id, first.id]
    assert summaries[1].loss_log == [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5}]
    assert summaries[1].progress == 1.0
    with pytest.raises(NotFound):
        runs.append_losses(999, [], 0.0)
