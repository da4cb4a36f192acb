"""`/gpt2bot-admin ab start|status|stop` and the experiment in `stats`, over the real
experiment and review services and a scripted backend serving two versions."""

from __future__ import annotations

import pytest

from admin.auth import ADMINS_ONLY, OWNERS_ONLY
from admin.fake import PNG_SIGNATURE
from bot.app import App
from model.backends.fake import ScriptedBackend
from storage import ModelVersionRepository
from tests.slack.conftest import SignedClient
from tests.slack.fake_slack import FakeSlack
from tests.slack.test_admin import admin


@pytest.mark.parametrize("admin_services", [None])  # the real services
@pytest.mark.parametrize("backend", [ScriptedBackend(model_version="v1")])
async def test_owner_starts_watches_and_stops_an_experiment(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    versions = ModelVersionRepository(app.db)
    for name in ("v1", "v2"):
        versions.add(name, f"/models/{name}", "bootstrap")
    versions.activate("v1")
    fake_slack.workspace_admins.add("UWSADMIN")

    assert await admin(slack, fake_slack, "ab start v2", user="UWSADMIN") == OWNERS_ONLY
    assert "No A/B experiment has run yet" in await admin(
        slack, fake_slack, "ab status", user="UWSADMIN"
    )
    assert "Name the candidate" in await admin(slack, fake_slack, "ab start")
    assert "0.3 or 30%, not 'lots'" in await admin(slack, fake_slack, "ab start v2 lots")
    assert "between 0 and 1" in await admin(slack, fake_slack, "ab start v2 1.5")

    started = await admin(slack, fake_slack, "ab start v2 30%")
    assert started.startswith("Started. Every process follows the database: ")
    assert "\n*A/B experiment #1: running*" in started
    assert "control `v1` (70% of members): 0 generations · 0 ratings · no ratings yet" in started
    assert "candidate `v2` (30% of members)" in started
    assert "Blind review of this pair: no verdicts yet" in started
    assert "only one runs at a time" in await admin(slack, fake_slack, "ab start v2")
    watched = await admin(slack, fake_slack, "ab status", user="UWSADMIN")
    assert "P(candidate better) = 0.50 · decision so far: continue" in watched
    assert await admin(slack, fake_slack, "ab status", user="U1") == ADMINS_ONLY

    stats = await admin(slack, fake_slack, "stats")
    assert stats.startswith("No generations yet") and "*A/B experiment #1: running*" in stats
    assert len(fake_slack.uploads) == 1 and fake_slack.uploads[0].startswith(PNG_SIGNATURE)

    stopped = await admin(slack, fake_slack, "ab stop")
    assert stopped.startswith("Stopped. Every process follows the database: ")
    assert "\n*A/B experiment #1: stopped*" in stopped
    assert "nothing to stop" in await admin(slack, fake_slack, "ab stop")
    actions = [(e["actor"], e["action"], e["allowed"]) for e in reversed(app.gate.audit.recent())]
    assert ("UWSADMIN", "slack ab start", False) in actions
    assert ("UADMIN", "slack ab stop", True) in actions
