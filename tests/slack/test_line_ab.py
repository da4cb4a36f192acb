"""An A/B experiment and the blind review inside a workspace's own model line, from Slack
through the shared admin command set (`line ab start|status|stop`, `line review`), over the
real services: the workspace's admins run them once the owners enabled the line, its members
are split between the line's two versions, the shared line is left alone, and everything is
audited in the line's scope."""

from __future__ import annotations

import pytest

from admin.auth import NO_LINE
from bot.app import App
from model.backends.fake import ScriptedBackend
from storage import GenerationRepository, ModelVersionRepository, ServerSettingsRepository
from tests.slack.conftest import SignedClient
from tests.slack.fake_slack import TEAM_ID, FakeSlack
from tests.slack.test_admin import admin

KEY = f"slack:{TEAM_ID}"


@pytest.mark.parametrize("admin_services", [None])  # the real services
@pytest.mark.parametrize("backend", [ScriptedBackend(model_version="v1")])
async def test_a_workspace_admin_runs_an_experiment_inside_the_line(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    versions = ModelVersionRepository(app.db)
    versions.add("v1", "/models/v1", "bootstrap")
    versions.activate("v1")
    for name in ("w-1", "w-2"):
        versions.add(name, f"/models/{name}", "bootstrap", base_version="v1", line=KEY)
    versions.activate("w-1")
    fake_slack.workspace_admins.add("UWSADMIN")

    assert await admin(slack, fake_slack, "line ab start w-2", user="UWSADMIN") == NO_LINE
    ServerSettingsRepository(app.db).update("slack", TEAM_ID, "owner", own_line=True)
    none_yet = await admin(slack, fake_slack, "line ab status", user="UWSADMIN")
    assert "No A/B experiment has run in this line yet" in none_yet
    assert "Say " in await admin(slack, fake_slack, "line ab begin w-2", user="UWSADMIN")
    shared = await admin(slack, fake_slack, "line ab start v1", user="UWSADMIN")
    assert "v1 is not a version of" in shared and KEY in shared

    started = await admin(slack, fake_slack, "line ab start w-2 50%", user="UWSADMIN")
    assert started.startswith(f"Started. In {KEY}'s line.")
    assert "*A/B experiment #1: running*" in started
    assert "control `w-1` (50% of members)" in started and "candidate `w-2`" in started
    again = await admin(slack, fake_slack, "line ab start w-2", user="UWSADMIN")
    assert "only one runs at a time in a line" in again
    # the shared line has no experiment, and another can start there beside the line's
    assert "No A/B experiment has run yet" in await admin(slack, fake_slack, "ab status")

    # the workspace's members are split between the line's versions, and it is recorded
    for n in range(8):
        await slack.command("/generate", f"seed={n} Tell me", user=f"UM{n}")
    generations = GenerationRepository(app.db)
    await fake_slack.wait_for(lambda: generations.count() >= 8)
    served = {generations.get(i).model_version for i in range(1, 9)}
    arms = {generations.get(i).arm for i in range(1, 9)}
    assert served == {"w-1", "w-2"} and arms == {"control", "candidate"}
    assert {generations.get(i).experiment_id for i in range(1, 9)} == {1}

    # the blind review of the line's own pair, with the line's commands in its answers
    stats = await admin(slack, fake_slack, "line review stats", user="UWSADMIN")
    assert stats.startswith("No blind-review verdicts yet: `/gpt2bot-admin line review next`")
    pair = await admin(slack, fake_slack, "line review next", user="UWSADMIN")
    assert "*Blind review #1*" in pair and "`/gpt2bot-admin line review vote 1 a`" in pair
    voted = await admin(slack, fake_slack, "line review vote 1 tie", user="UWSADMIN")
    assert "you called it a tie" in voted and "`w-1`" in voted and "`w-2`" in voted

    stopped = await admin(slack, fake_slack, "line ab stop", user="UWSADMIN")
    assert stopped.startswith(f"Stopped. In {KEY}'s line.") and "#1: stopped" in stopped
    entries = list(reversed(app.gate.audit.recent()))
    gate = [
        (e["action"], e["scope"], e["allowed"]) for e in entries if e["action"] == "slack line ab"
    ]
    assert gate[0] == ("slack line ab", "line", False) and all(ok for _, _, ok in gate[1:])
    changes = [(e["action"], e["scope"], e["server_id"]) for e in entries if e["platform"] == "ab"]
    assert changes == [("ab start", "line", KEY), ("ab stop", "line", KEY)]
