"""/mydata on Slack: the export goes to the member's DMs, deletion needs `confirm`."""

from __future__ import annotations

import json

import pytest

from bot.app import App
from storage import GenerationRepository
from tests.slack.conftest import SignedClient, eventually
from tests.slack.fake_slack import FakeSlack


async def private_answer(slack: SignedClient, fake: FakeSlack, text: str) -> str:
    before = len(fake.responses)
    status, _ = await slack.command("/mydata", text, user="U1")
    assert status == 200
    responses = await fake.wait_for(lambda: fake.responses[before:])
    assert responses[0]["response_type"] == "ephemeral"
    return str(responses[0]["text"])


@pytest.mark.parametrize("admin_services", [pytest.param(None, id="real-services")])
async def test_mydata_export_to_dms_then_delete(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    await slack.command("/generate", "max_new_tokens=3 My own Slack prompt", user="U1")
    repository = GenerationRepository(app.db)
    await eventually(lambda: repository.count() == 1)

    told = await private_answer(slack, fake_slack, "export")
    assert "direct messages" in told
    (done,) = fake_slack.called("files.completeUploadExternal")
    assert done["channel_id"] == "DU1"
    rows = [json.loads(line) for line in fake_slack.uploads[-1].decode().splitlines()]
    assert rows[0]["prompt"] == "My own Slack prompt"

    assert "confirm" in await private_answer(slack, fake_slack, "delete")
    assert next(iter(repository.iter_all())).prompt  # not deleted without confirm
    deleted = await private_answer(slack, fake_slack, "delete confirm")
    assert deleted.startswith("Done: the text of 1 generation(s)")
    (record,) = list(repository.iter_all())
    assert (record.prompt, record.output, record.redacted) == ("", "", True)
