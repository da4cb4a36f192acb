import pytest

from storage import ModelVersionRepository, NotFound


def test_exactly_one_active_version_and_rollback_target(db):
    versions = ModelVersionRepository(db)
    versions.add("v1", "/m/v1", "bootstrap")
    versions.add("v2", "/m/v2", "bootstrap", parent="v1", metrics={"eval_loss": 2.0})
    assert versions.active() is None
    versions.activate("v1")
    versions.activate("v2")
    statuses = {v.name: v.status for v in versions.list()}
    assert statuses == {"v1": "retired", "v2": "active"}
    assert versions.previous_active().name == "v1"
    versions.activate("v1")
    assert versions.active().name == "v1"
    assert versions.get("v2").metrics == {"eval_loss": 2.0}
    with pytest.raises(NotFound):
        versions.activate("v9")
