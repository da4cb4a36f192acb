"""The dashboard's A/B experiment API over the real experiment and review services, a real
database and a scripted backend serving two versions: start, live status with the review of
the pair, stop, the sentences for what cannot be done, and an experiment that is still on the
dashboard after its serving process was killed with `kill -9`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from web_helpers import ADMIN_TOKEN, Browser, make_settings, open_browser

from admin.moderation.fake import FakeModerator
from bot.app import App
from bot.chat import Origin
from bot.platforms.web import build_web_app
from bot.platforms.web.security import Guard
from model.backends.fake import ScriptedBackend
from storage import ModelVersionRepository
from tests.bot.test_ab import KILLED_PROCESS, REPO, install


@pytest.fixture
async def ab_app(tmp_path: Path, model_dir: Path) -> AsyncIterator[App]:
    settings = make_settings(tmp_path, model_dir)
    opened = await App.open(
        settings, backend=ScriptedBackend(model_version="v1"), moderator=FakeModerator()
    )
    versions = ModelVersionRepository(opened.db)
    for name in ("v1", "v2"):
        versions.add(name, f"/models/{name}", "bootstrap")
    versions.activate("v1")
    yield opened
    await opened.close()


@pytest.fixture
async def owner(ab_app: App) -> AsyncIterator[Browser]:
    client, browser = await open_browser(build_web_app(ab_app, Guard(admin_token=ADMIN_TOKEN)))
    await browser.login()
    yield browser
    await client.close()


async def status(browser: Browser) -> dict[str, Any]:
    response = await browser.client.get("/admin/api/ab")
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def candidate_member(app: App) -> str:
    """A web visitor the running experiment serves the candidate."""
    for n in range(1000):
        assignment = await app.admin.experiments.arm_for("web", f"m{n}")
        if assignment is not None and assignment.arm == "candidate":
            return f"m{n}"
    raise AssertionError("nobody drew the candidate")


async def test_the_owner_starts_watches_and_stops_an_experiment(ab_app: App, owner: Browser):
    before = await status(owner)
    assert before == {"experiment": None, "active": "v1", "candidates": ["v2"]}

    no_csrf = await owner.client.post("/admin/api/ab/start", json={"version": "v2"})
    assert no_csrf.status == 403
    for body, error in (
        ({}, "Choose the candidate version."),
        ({"version": "v1"}, "v1 is the active version already"),
        ({"version": "v9"}, "There is no model version named 'v9'"),
        ({"version": "v2", "share": "lots"}, "such as 0.3 or 30%"),
        ({"version": "v2", "share": "1"}, "between 0 and 1"),
    ):
        refused = await owner.post("/admin/api/ab/start", body)
        assert refused.status in (400, 404) and error in (await refused.json())["error"], body
    assert (await status(owner))["experiment"] is None  # nothing was started

    started = await owner.post("/admin/api/ab/start", {"version": "v2", "share": "25%"})
    assert started.status == 200, await started.text()
    answer = await started.json()
    assert answer["message"].startswith(
        "Experiment #1 started: v1 against v2 (25% of members). Every process follows the "
        "database: "
    )
    member = await candidate_member(ab_app)
    done = await ab_app.chat.generate(Origin("web", member), "Hello")
    await ab_app.chat.rate(done.generations[0].id, "someone-else", "👎")
    item = await ab_app.admin.reviews.next_item("web-admin", "v1", "v2")
    await ab_app.admin.reviews.record("web-admin", item.id, "tie")

    live = (await status(owner))["experiment"]
    assert (live["id"], live["status"], live["decision"]) == (1, "running", "continue")
    candidate = live["arms"]["candidate"]
    assert (candidate["version"], candidate["share"]) == ("v2", 0.25)
    assert (candidate["generations"], candidate["ratings"], candidate["up_share"]) == (1, 1, 0.0)
    assert live["probability"] < 0.5 and len(candidate["interval"]) == 2
    assert live["review"] == {
        "control": "v1",
        "candidate": "v2",
        "judged": 1,
        "candidate_wins": 0,
        "control_wins": 0,
        "ties": 1,
        "candidate_rate": 0.5,
    }
    second = await owner.post("/admin/api/ab/start", {"version": "v2"})
    assert second.status == 400 and "only one runs at a time" in (await second.json())["error"]

    stopped = await owner.post("/admin/api/ab/stop", {})
    assert (await stopped.json())["experiment"]["status"] == "stopped"
    again = await owner.post("/admin/api/ab/stop", {})
    assert again.status == 400 and "nothing to stop" in (await again.json())["error"]
    audit = await ab_app.db.run(ab_app.gate.audit.recent)
    gated = [(e["action"], e["allowed"]) for e in audit if e["platform"] == "web"]
    assert ("ab.start", True) in gated and ("ab.stop", True) in gated


def test_an_experiment_is_on_the_dashboard_after_kill_9(tmp_path: Path, model_dir: Path):
    settings = make_settings(tmp_path, model_dir)
    install(settings)  # tiny-1 active, `better` registered
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", KILLED_PROCESS, settings.storage.url],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()

    async def reopen() -> dict[str, Any]:
        backend = ScriptedBackend(model_version="tiny-1")
        app = await App.open(settings, backend=backend, moderator=FakeModerator())
        web_app = build_web_app(app, Guard(admin_token=ADMIN_TOKEN))
        client, browser = await open_browser(web_app)
        try:
            await browser.login()
            assert backend.resident_versions == ("tiny-1", "better")  # serving both again
            return await status(browser)
        finally:
            await client.close()
            await app.close()

    shown = asyncio.run(reopen())["experiment"]
    assert (shown["id"], shown["status"]) == (1, "running")
    assert shown["arms"]["control"]["version"] == "tiny-1"
    assert shown["arms"]["candidate"]["version"] == "better"
