"""The dashboard's blind review API over the real review service, a real database and a
scripted backend that serves two versions: pairs without names, verdicts that reveal them,
win rates, export, and the sentences shown when a review cannot be made."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from web_helpers import ADMIN_TOKEN, Browser, make_settings, open_browser

from admin.moderation.fake import FakeModerator
from bot.app import App
from bot.platforms.web import build_web_app
from bot.platforms.web.security import Guard
from model.backends.base import GenerationRequest
from model.backends.fake import ScriptedBackend
from storage import ModelVersionRepository

WORDS = {"v1": " the cat sat on the mat.", "v2": " a dog ran across the park."}


def by_version(request: GenerationRequest, sample: int) -> str:
    return WORDS[request.version or "v1"]


@pytest.fixture
async def review_app(tmp_path: Path, model_dir: Path) -> AsyncIterator[App]:
    settings = make_settings(tmp_path, model_dir)
    backend = ScriptedBackend(text=by_version, model_version="v1")
    opened = await App.open(settings, backend=backend, moderator=FakeModerator())
    versions = ModelVersionRepository(opened.db)
    versions.add("v1", "/models/v1", "bootstrap")
    versions.activate("v1")
    yield opened
    await opened.close()


@pytest.fixture
async def owner(review_app: App) -> AsyncIterator[Browser]:
    client, visitor = await open_browser(build_web_app(review_app, Guard(admin_token=ADMIN_TOKEN)))
    await visitor.login()
    yield visitor
    await client.close()


async def next_pair(owner: Browser) -> tuple[int, dict]:
    response = await owner.post("/admin/api/review/next", {})
    return response.status, await response.json()


async def test_one_version_is_explained_then_pairs_are_blind_until_the_vote(
    review_app: App, owner: Browser
) -> None:
    status, body = await next_pair(owner)
    assert status == 409 and body["error"].startswith("Train or register a second version first")

    ModelVersionRepository(review_app.db).add("v2", "/models/v2", "bootstrap")
    status, body = await next_pair(owner)
    assert status == 200
    item = body["item"]
    assert set(item) == {"id", "prompt", "source", "output_a", "output_b"}
    assert "v1" not in json.dumps(item) and "v2" not in json.dumps(item)
    assert {item["output_a"], item["output_b"]} == set(WORDS.values())

    response = await owner.post("/admin/api/review/vote", {"id": item["id"], "choice": "a"})
    assert response.status == 200
    answer = await response.json()
    revealed = answer["revealed"]
    assert WORDS[revealed["version_a"]] == item["output_a"]  # the reveal matches what was shown
    assert revealed["winner"] == revealed["version_a"]
    assert answer["message"] == (
        f"A was {revealed['version_a']}, B was {revealed['version_b']}: "
        f"you preferred {revealed['winner']}."
    )
    [rate] = answer["rates"]
    assert (rate["first"], rate["second"], rate["judged"], rate["ties"]) == ("v1", "v2", 1, 0)

    again = await owner.post("/admin/api/review/vote", {"id": item["id"], "choice": "b"})
    assert again.status == 400 and "judged already" in (await again.json())["error"]
    unknown = await owner.post("/admin/api/review/vote", {"id": 99, "choice": "a"})
    assert unknown.status == 404
    actions = [(e["action"], e["allowed"]) for e in review_app.gate.audit.recent()]
    assert ("review.next", True) in actions and ("review.vote", True) in actions


async def test_win_rates_and_verdicts_are_exported(review_app: App, owner: Browser) -> None:
    ModelVersionRepository(review_app.db).add("v2", "/models/v2", "bootstrap")
    for choice in ("a", "tie"):
        _, body = await next_pair(owner)
        await owner.post("/admin/api/review/vote", {"id": body["item"]["id"], "choice": choice})

    rates = await (await owner.client.get("/admin/api/review/rates")).json()
    assert rates["rates"][0]["judged"] == 2 and rates["rates"][0]["ties"] == 1
    exported = await owner.client.get("/admin/api/review/export?what=verdicts&format=csv")
    assert exported.status == 200 and "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await exported.text())))
    assert [r["verdict"] for r in rows] == ["a", "tie"]
    assert rows[0]["output_a"] in WORDS.values() and rows[0]["reviewer"].startswith("web-admin")
    table = await owner.client.get("/admin/api/review/export?what=win-rates")
    assert json.loads(await table.text())["judged"] == 2
    bad = await owner.client.get("/admin/api/review/export?what=everything")
    assert bad.status == 400


async def test_the_review_page_is_served(owner: Browser) -> None:
    page = await owner.client.get("/admin/review")
    assert page.status == 200 and "Which output is better?" in await page.text()
