"""`/gpt2bot-admin`: admins by Slack user id, every attempt audited, non-admins refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from admin.auth import ADMINS_ONLY, OWNERS_ONLY
from admin.base import ProgressCallback
from admin.errors import Invalid, PromotionRefused, Unknown, no_version
from admin.fake import CHART, ScriptedAdmin, run_record, version_record
from admin.results import CurationReport
from bot.app import App
from storage import CuratedSampleRecord, RunStatus, TrainingRunRecord
from tests.slack.conftest import ADMIN, SignedClient, eventually
from tests.slack.fake_slack import TEAM_ID, FakeSlack


async def admin(slack: SignedClient, fake: FakeSlack, text: str, user: str = ADMIN) -> str:
    """Run an admin command and return the private answer."""
    before = len(fake.responses)
    status, body = await slack.command("/gpt2bot-admin", text, user=user)
    assert status == 200 and body == ""
    responses = await fake.wait_for(lambda: fake.responses[before:])
    assert responses[0]["response_type"] == "ephemeral"
    return str(responses[0]["text"])


def called(services: ScriptedAdmin, *names: str) -> list[tuple[str, tuple[Any, ...]]]:
    """The calls of these names, in order."""
    return [call for call in services.calls if call[0] in names]


class Retraining:
    """Answers `training.start` with run #1 running at 40%, and `training.status` with it,
    until the test ends it with `end(status)` (through the caller's progress callback)."""

    def __init__(self, services: ScriptedAdmin) -> None:
        self.runs: list[TrainingRunRecord] = []
        self.progress: list[ProgressCallback] = []
        services.answers["training.start"] = self.start
        services.answers["training.status"] = lambda: self.runs[-1] if self.runs else None

    def start(self, actor: str, progress: ProgressCallback, *options: Any) -> TrainingRunRecord:
        self.runs.append(run_record(1, RunStatus.RUNNING, actor, progress=0.4))
        self.progress.append(progress)
        return self.runs[-1]

    def end(self, status: RunStatus) -> None:
        self.runs.append(run_record(1, status))
        self.progress[-1](self.runs[-1])


async def test_non_admin_is_refused_politely_and_audited(
    slack: SignedClient, fake_slack: FakeSlack, app: App, scripted: ScriptedAdmin
) -> None:
    answer = await admin(slack, fake_slack, "model use fake-1", user="U1")
    assert answer == OWNERS_ONLY
    assert scripted.calls == [("experiments.resume", ())]  # the app's start-up only
    (entry,) = app.gate.audit.recent()
    assert entry["actor"] == "U1" and entry["platform"] == "slack"
    assert entry["allowed"] is False and entry["action"] == "slack model use"


async def test_admin_curates_and_is_audited(
    slack: SignedClient, fake_slack: FakeSlack, app: App, scripted: ScriptedAdmin
) -> None:
    now = datetime.now(UTC)
    scripted.answers.update(
        {
            "curation.add": CurationReport(1),
            "curation.recent": [
                CuratedSampleRecord(1, "A <good> example", "admin", ADMIN, now, True)
            ],
            "curation.remove": Unknown("There is no curated sample 8."),
        }
    )
    answer = await admin(slack, fake_slack, "curate add A &lt;good&gt; example")
    assert answer == "Curated data: added 1."
    assert scripted.calls[1:] == [("curation.add", (ADMIN, ["A <good> example"]))]
    (entry,) = app.gate.audit.recent()
    assert entry["allowed"] is True and entry["action"] == "slack curate add"

    await admin(slack, fake_slack, "curate  add First line\n  second line")
    assert scripted.calls[-1] == ("curation.add", (ADMIN, ["First line\n  second line"]))

    listing = await admin(slack, fake_slack, "curate list")
    assert "`#1` [admin] by UADMIN: A &lt;good&gt; example" in listing
    assert await admin(slack, fake_slack, "curate remove 8") == "There is no curated sample 8."
    assert "must be a number" in await admin(slack, fake_slack, "curate remove eight")
    assert called(scripted, "curation.remove") == [("curation.remove", (ADMIN, 8))]


async def test_models_schedule_and_errors_are_sentences(
    slack: SignedClient, fake_slack: FakeSlack, scripted: ScriptedAdmin
) -> None:

    def use(actor: str, version: str, force: bool) -> Any:
        if version != "fake-1":
            raise no_version(version)
        return version_record(version, "active")

    def schedule(actor: str, cron: str | None) -> list[datetime]:
        if cron is not None and cron.startswith("*"):
            raise Invalid("Retraining every minute is too often: use at most hourly.")
        return [datetime.now(UTC) + timedelta(days=7 * week) for week in (1, 2, 3)]

    scripted.answers.update({"registry.use": use, "training.schedule": schedule})
    Retraining(scripted)
    assert "▶ `fake-1` active · full model" in await admin(slack, fake_slack, "model list")
    used = await admin(slack, fake_slack, "model use fake-1 force")
    assert used.startswith("Now serving fake-1 here, and the database names it the active")
    assert "no model version named 'v9'" in await admin(slack, fake_slack, "model use v9")
    assert called(scripted, "registry.use") == [
        ("registry.use", (ADMIN, "fake-1", True)),
        ("registry.use", (ADMIN, "v9", False)),
    ]
    assert "too often" in await admin(slack, fake_slack, "retrain schedule * * * * *")
    assert "next runs" in await admin(slack, fake_slack, "retrain schedule 0 3 * * 0")
    assert ("training.schedule", (ADMIN, "0 3 * * 0")) in scripted.calls
    assert await admin(slack, fake_slack, "retrain cancel") == "No training run is running."
    assert (await admin(slack, fake_slack, "retrain now")).startswith("Training run #1 started")
    status = await admin(slack, fake_slack, "retrain status")
    assert status == "Training run #1 (manual, by UADMIN): running, 40%, about 30s left."
    assert "`/gpt2bot-admin curate add TEXT`" in await admin(slack, fake_slack, "")
    usage = await admin(slack, fake_slack, "frobnicate")
    assert "I don't know `frobnicate`" in usage and "curate add TEXT" in usage


async def test_retrain_now_reports_when_the_run_ends(
    slack: SignedClient, fake_slack: FakeSlack, scripted: ScriptedAdmin
) -> None:
    retraining = Retraining(scripted)
    answer = await admin(slack, fake_slack, "retrain now")
    assert answer.startswith("Training run #1 started on 42 samples")
    retraining.end(RunStatus.SUCCEEDED)  # the run ends in the background
    (note,) = await fake_slack.wait_for(lambda: fake_slack.called("chat.postEphemeral"))
    assert note["user"] == ADMIN and note["channel"] == "C1"
    assert "succeeded" in note["text"] and "ft-1 promoted" in note["text"]
    assert "3.500 → 3.100" in note["text"]


async def test_stats_answer_with_a_table_and_post_the_chart(
    slack: SignedClient, fake_slack: FakeSlack, scripted: ScriptedAdmin
) -> None:
    answer = await admin(slack, fake_slack, "stats")
    assert "`fake-1` · 10 · 4 · +0.50 · 75% · 3" in answer
    assert fake_slack.uploads == [CHART]
    (done,) = fake_slack.called("files.completeUploadExternal")
    assert done["channel_id"] == "C1"


@pytest.mark.parametrize("admin_services", [pytest.param(None, id="real-services")])
async def test_the_real_admin_services_curate_and_report(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    """End to end through the real services on the test's database (no fakes past Slack)."""
    assert not isinstance(app.admin, ScriptedAdmin)
    answer = await admin(slack, fake_slack, "curate add A sample stored for &lt;real&gt;.")
    assert answer == "Curated data: added 1."
    listing = await admin(slack, fake_slack, "curate list")
    assert "`#1` [admin] by UADMIN: A sample stored for &lt;real&gt;." in listing
    answer = await admin(slack, fake_slack, "stats")
    assert answer == "No generations yet, so no ratings to compare."
    await eventually(lambda: len(app.gate.audit.recent()) == 3)


@pytest.mark.parametrize("admin_services", [pytest.param(None, id="real-services")])
async def test_a_workspace_admin_sets_their_workspace_but_not_the_model(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    fake_slack.workspace_admins.add("UWSADMIN")
    saved = await admin(slack, fake_slack, "server cooldown 12", user="UWSADMIN")
    assert saved.startswith("Saved.") and "cooldown per member: 12 s" in saved
    caps = await admin(slack, fake_slack, "server caps max_new_tokens=16", user="UWSADMIN")
    assert "max_new_tokens ≤ 16" in caps
    assert await admin(slack, fake_slack, "retrain now", user="UWSADMIN") == OWNERS_ONLY
    assert await admin(slack, fake_slack, "server cooldown 0", user="U1") == ADMINS_ONLY
    record = await app.admin.servers.get("slack", TEAM_ID)
    assert (record.cooldown_s, record.max_new_tokens_cap) == (12.0, 16)
    scopes = [(e["actor"], e["scope"], e["allowed"]) for e in reversed(app.gate.audit.recent())]
    assert scopes == [
        ("UWSADMIN", "server", True),
        ("UWSADMIN", "server", True),
        ("UWSADMIN", "global", False),
        ("U1", "server", False),
    ]


async def test_a_gate_refusal_says_why_and_how_to_force(
    slack: SignedClient, fake_slack: FakeSlack, scripted: ScriptedAdmin
) -> None:
    """The promotion gate's refusal is the admin's answer, not an incident: its reason and
    how to force it in Slack; forcing then switches."""

    def use(actor: str, version: str, force: bool) -> Any:
        if not force:
            raise PromotionRefused(
                f"{version} was not promoted: its held-out loss 3.9000 is worse than the "
                "active fake-1's 3.5000."
            )
        return version_record(version, "active", parent="fake-1", metrics={"eval_loss": 3.9})

    scripted.answers["registry.use"] = use

    answer = await admin(slack, fake_slack, "model use ft-2")

    assert answer == (
        "ft-2 was not promoted: its held-out loss 3.9000 is worse than the active fake-1's "
        "3.5000. To promote it anyway, add `force`: `/gpt2bot-admin model use VERSION force`."
    )
    forced = await admin(slack, fake_slack, "model use ft-2 force")
    assert forced.startswith("Now serving ft-2 here, and the database names it the active")
