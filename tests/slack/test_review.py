"""`/gpt2bot-admin review ...`: the blind review in Slack over the real review service and a
scripted backend serving two versions; owners only, every attempt audited."""

from __future__ import annotations

import re

import pytest

from admin.auth import OWNERS_ONLY
from bot.app import App
from model.backends.base import GenerationRequest
from model.backends.fake import ScriptedBackend
from storage import ModelVersionRepository
from tests.slack.conftest import SignedClient
from tests.slack.fake_slack import FakeSlack
from tests.slack.test_admin import admin

WORDS = {"v1": "The cat sat on the mat.", "v2": "A dog ran across the park."}


def by_version(request: GenerationRequest, sample: int) -> str:
    return f" {WORDS[request.version or 'v1']}"


@pytest.mark.parametrize("admin_services", [None])  # the real services
@pytest.mark.parametrize("backend", [ScriptedBackend(text=by_version, model_version="v1")])
async def test_owner_reviews_a_blind_pair_and_sees_the_win_rates(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    versions = ModelVersionRepository(app.db)
    versions.add("v1", "/models/v1", "bootstrap")
    versions.activate("v1")
    one = await admin(slack, fake_slack, "review next")
    assert one.startswith("Train or register a second version first")
    versions.add("v2", "/models/v2", "bootstrap")

    shown = await admin(slack, fake_slack, "review next")
    assert shown.startswith("*Blind review #1*") and "v1" not in shown and "v2" not in shown
    assert "`/gpt2bot-admin review vote 1 a`" in shown
    a_text = re.search(r"\*A\*\n> (.*)", shown)
    assert a_text is not None
    a_version = "v1" if a_text.group(1) == WORDS["v1"] else "v2"

    assert await admin(slack, fake_slack, "review vote 1 b", user="U1") == OWNERS_ONLY
    revealed = await admin(slack, fake_slack, "review vote 1 a")
    assert f"you preferred `{a_version}`" in revealed and revealed.startswith("A was `")
    assert "judged already" in await admin(slack, fake_slack, "review vote 1 tie")
    assert "Choose a" in await admin(slack, fake_slack, "review vote 1 left")

    stats = await admin(slack, fake_slack, "review stats")
    won = 1 if a_version == "v1" else 0
    assert f"`v1` vs `v2`: 1 judged · `v1` {won} won" in stats
    actions = [(e["action"], e["allowed"]) for e in reversed(app.gate.audit.recent())]
    assert ("slack review vote", False) in actions and ("slack review stats", True) in actions
