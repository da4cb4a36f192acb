"""A workspace's own model line reached from Slack through the shared admin command set: the
owners enable it, then the workspace's admins add to it; everything is audited."""

from __future__ import annotations

import pytest

from admin.auth import NO_LINE, OWNERS_ONLY
from bot.app import App
from storage import CuratedSampleRepository
from tests.slack.conftest import SignedClient
from tests.slack.fake_slack import TEAM_ID, FakeSlack
from tests.slack.test_admin import admin


@pytest.mark.parametrize("admin_services", [pytest.param(None, id="real-services")])
async def test_owners_enable_a_workspace_line_and_its_admins_run_it(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    fake_slack.workspace_admins.add("UWSADMIN")
    key = f"slack:{TEAM_ID}"
    assert await admin(slack, fake_slack, "line add A text", user="UWSADMIN") == NO_LINE
    assert await admin(slack, fake_slack, "line enable", user="UWSADMIN") == OWNERS_ONLY
    enabled = await admin(slack, fake_slack, "line enable")  # an owner
    assert enabled.startswith(f"`{key}` has its own model line")

    added = await admin(
        slack, fake_slack, "line add A text for this workspace only", user="UWSADMIN"
    )
    assert added == "Curated data: added 1."
    shown = await admin(slack, fake_slack, "line show", user="UWSADMIN")
    assert "its members get the shared version" in shown
    queue = await admin(slack, fake_slack, "line queue", user="UWSADMIN")
    assert queue.startswith("Nothing waits for review")
    missing = await admin(slack, fake_slack, "line use v9", user="UWSADMIN")
    assert "no model version named 'v9'" in missing
    [sample] = CuratedSampleRepository(app.db).active()
    assert sample.origin == key and CuratedSampleRepository(app.db).active(None) == []

    entries = list(reversed(app.gate.audit.recent()))
    scopes = [(e["action"], e["scope"], e["allowed"]) for e in entries if e["platform"] != "line"]
    assert scopes == [
        ("slack line add", "line", False),
        ("slack line enable", "global", False),
        ("slack line enable", "global", True),
        ("slack line add", "line", True),
        ("slack line show", "read", True),
        ("slack line queue", "line", True),
        ("slack line use", "line", True),
    ]
    # and what each allowed change did, written by the line service with the workspace's key
    changes = [
        (e["action"], e["scope"], e["server_id"]) for e in entries if e["platform"] == "line"
    ]
    assert changes == [("line enable", "line", key), ("line add", "line", key)]
