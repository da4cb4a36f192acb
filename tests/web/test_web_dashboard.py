"""The admin dashboard's endpoints: login, filters, export, stats, models, training, curation,
audit — over the real admin services, and over scripted ones for training runs."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from web_helpers import ADMIN_TOKEN, Browser, parse_sse

from admin.errors import AlreadyRunning, Invalid, PromotionRefused, no_version
from admin.fake import ScriptedAdmin, run_record, version_record
from bot.app import App
from bot.platforms.web import dashboard
from storage import ModelVersionRepository, RunStatus, TrainingRunRecord
from storage.models import TrainingRun

ADMIN_GETS = (
    "generations",
    "export",
    "stats",
    "models",
    "lines",
    "fleet",
    "training",
    "curation",
    "audit",
    "servers",
    "review/rates",
    "review/export",
    "ab",
)
ADMIN_POSTS = (
    "models/use",
    "models/rollback",
    "training/start",
    "training/cancel",
    "training/schedule",
    "curation/add",
    "curation/remove",
    "curation/upload",
    "servers/update",
    "review/next",
    "review/vote",
    "ab/start",
    "ab/stop",
)


async def make_generation(browser: Browser, prompt: str, rate: str | None = None) -> int:
    response = await browser.post(
        "/api/generate", {"prompt": prompt, "params": {"max_new_tokens": 3}}
    )
    gid = parse_sse(await response.text())[-1][1]["generations"][0]["id"]
    if rate:
        await browser.post(f"/api/generations/{gid}/rating", {"emoji": rate})
    return int(gid)


async def test_every_admin_endpoint_needs_a_login(browser: Browser) -> None:
    assert browser.client.app is not None
    registered = {
        route.resource.canonical.removeprefix("/admin/api/")
        for route in browser.client.app.router.routes()
        if route.resource is not None and route.resource.canonical.startswith("/admin/api/")
    }
    assert registered == {*ADMIN_GETS, *ADMIN_POSTS, "login", "logout"}  # none forgotten here
    for name in ADMIN_GETS:
        response = await browser.client.get(f"/admin/api/{name}")
        assert response.status == 401, name
        assert "admin token" in (await response.json())["error"]
    for name in ADMIN_POSTS:
        response = await browser.post(f"/admin/api/{name}", {})
        assert response.status == 401, name


async def test_wrong_token_is_refused_and_audited_right_token_opens_a_session(
    app: App, browser: Browser
) -> None:
    wrong = await browser.post("/admin/api/login", {"token": "guess"})
    assert wrong.status == 403 and "not right" in (await wrong.json())["error"]
    assert (await browser.start())["is_admin"] is False
    await browser.login()
    assert (await browser.start())["is_admin"] is True
    cookies = {c.key: c for c in browser.client.session.cookie_jar}
    assert cookies["gpt2bot_admin"]["httponly"] and cookies["gpt2bot_admin"]["samesite"] == "Strict"
    log = await app.db.run(app.gate.audit.recent)
    assert [(e["action"], e["allowed"]) for e in log[:2]] == [
        ("web.login", True),
        ("web.login", False),
    ]
    await browser.post("/admin/api/logout", {})
    assert (await browser.client.get("/admin/api/stats")).status == 401


async def test_login_without_csrf_token_is_refused(browser: Browser) -> None:
    response = await browser.client.post("/admin/api/login", json={"token": ADMIN_TOKEN})
    assert response.status == 403


async def test_generations_browser_filters(browser: Browser) -> None:
    up = await make_generation(browser, "Alpha story", "👍")
    down = await make_generation(browser, "Beta 100% story", "👎")
    plain = await make_generation(browser, "Gamma story")
    await browser.login()

    async def ids(**query: str) -> list[int]:
        response = await browser.client.get("/admin/api/generations", params=query)
        assert response.status == 200, await response.text()
        return [g["id"] for g in (await response.json())["generations"]]

    assert await ids() == [plain, down, up]
    assert await ids(rating="up") == [up]
    assert await ids(rating="down") == [down]
    assert await ids(rating="rated") == [down, up]
    assert await ids(rating="unrated") == [plain]
    assert await ids(q="beta 100%") == [down]  # case-insensitive, % is literal
    assert await ids(q="100_") == []
    assert await ids(model_version="bootstrap-1") == [plain, down, up]
    assert await ids(model_version="other") == []
    today = datetime.now(UTC).date()
    assert await ids(since=str(today), until=str(today)) == [plain, down, up]
    assert await ids(until=str(today - timedelta(days=1))) == []
    assert await ids(since=str(today + timedelta(days=1))) == []
    bad = await browser.client.get("/admin/api/generations", params={"since": "yesterday"})
    assert bad.status == 400 and "date like" in (await bad.json())["error"]
    body = await (await browser.client.get("/admin/api/generations")).json()
    assert body["model_versions"] == ["bootstrap-1"] and body["generations"][0]["platform"] == "web"


async def test_export_downloads_filtered_jsonl_and_csv_and_is_audited(
    app: App, browser: Browser
) -> None:
    up = await make_generation(browser, "Export <b>me</b>", "👍")
    await make_generation(browser, "Not me")
    await browser.login()
    response = await browser.client.get(
        "/admin/api/export", params={"format": "jsonl", "rating": "up"}
    )
    assert response.status == 200
    assert "attachment" in response.headers["Content-Disposition"]
    rows = [json.loads(line) for line in (await response.text()).splitlines()]
    assert [r["id"] for r in rows] == [up] and rows[0]["prompt"] == "Export <b>me</b>"
    assert rows[0]["ratings_up"] == 1
    response = await browser.client.get("/admin/api/export", params={"format": "csv"})
    table = list(csv.DictReader(io.StringIO(await response.text())))
    assert len(table) == 2 and table[0]["prompt"] == "Export <b>me</b>"
    bad = await browser.client.get("/admin/api/export", params={"format": "xml"})
    assert bad.status == 400
    log = await app.db.run(app.gate.audit.recent)
    assert [e["action"] for e in log[:2]] == ["web.export", "web.export"]


async def test_stats_per_model_version(browser: Browser) -> None:
    await make_generation(browser, "One", "👍")
    await make_generation(browser, "Two", "👍")
    await make_generation(browser, "Three", "👎")
    await make_generation(browser, "Four")
    await browser.login()
    stats = (await (await browser.client.get("/admin/api/stats")).json())["stats"]
    assert len(stats) == 1
    row = stats[0]
    assert row["model_version"] == "bootstrap-1" and row["generations"] == 4
    assert row["ratings"] == 3 and abs(row["positive_share"] - 2 / 3) < 1e-9
    assert abs(row["mean_score"] - 1 / 3) < 1e-9 and row["raters"] == 1


async def test_panels_are_live_and_actions_answer_in_sentences(browser: Browser) -> None:
    """Over the real admin services (what `App.open` builds) every panel is available, and an
    action that has nothing to act on says why, with a fitting status, never a traceback."""
    await browser.login()
    models = await (await browser.client.get("/admin/api/models")).json()
    assert [m["name"] for m in models["models"]] == ["bootstrap-1"]
    assert models["models"][0]["status"] == "active"
    training = await (await browser.client.get("/admin/api/training")).json()
    assert training["runs"] == []
    assert training["current"] is None
    curation = await (await browser.client.get("/admin/api/curation")).json()
    assert curation["items"] == []
    expected = {
        "models/use": (400, "Choose the model version to use."),
        "models/rollback": (404, "There is no earlier active version to roll back to."),
        "training/start": (400, "add at least 2"),
        "training/cancel": (200, "No training run is in progress."),
        "training/schedule": (200, "Scheduled retraining is off."),
        "curation/add": (400, "Write the text to add."),
        "curation/remove": (400, "That is not a sample number."),
        "curation/upload": (400, "Choose a .txt or .jsonl file to upload."),
        "servers/update": (400, "Choose the server to change."),
        "review/next": (409, "Train or register a second version first"),
        "review/vote": (400, "Say which pair the verdict is for"),
        "ab/start": (400, "Choose the candidate version."),
        "ab/stop": (400, "No experiment is running, so there is nothing to stop"),
    }
    assert set(expected) == set(ADMIN_POSTS)
    for name, (status, sentence) in expected.items():
        response = await browser.post(f"/admin/api/{name}", {})
        assert response.status == status, name
        body = await response.json()
        assert sentence in (body["message"] if status == 200 else body["error"]), name


async def test_training_panel_start_status_cancel_schedule(
    scripted_admin_browser: tuple[Browser, App, ScriptedAdmin],
) -> None:
    browser, app, admin = scripted_admin_browser
    runs: list[TrainingRunRecord] = []

    def start(actor: str, *options: Any) -> TrainingRunRecord:
        if runs:
            raise AlreadyRunning("A training run is already running (40%).")
        runs.append(run_record(1, RunStatus.RUNNING, actor, progress=0.4))
        return runs[0]

    def schedule(actor: str, cron: str | None) -> list[datetime]:
        if cron is not None and len(cron.split()) != 5:
            raise Invalid(f"{cron!r} is not a cron expression: use five fields.")
        return [] if cron is None else [datetime.now(UTC) + timedelta(days=d) for d in (7, 14, 21)]

    admin.answers.update(
        {
            "training.start": start,
            "training.status": lambda: runs[-1] if runs else None,
            "training.cancel": True,
            "training.schedule": schedule,
        }
    )
    started = await browser.post("/admin/api/training/start", {})
    assert started.status == 200 and "run #1 started" in (await started.json())["message"]
    again = await browser.post("/admin/api/training/start", {})
    assert again.status == 409 and "already running" in (await again.json())["error"]
    status = await (await browser.client.get("/admin/api/training")).json()
    assert status["current"]["status"] == "running"
    assert status["current"]["progress"] == 0.4
    cancelled = await browser.post("/admin/api/training/cancel", {})
    assert (await cancelled.json())["message"] == "Training cancelled."
    scheduled = await browser.post("/admin/api/training/schedule", {"cron": "0 3 * * 0"})
    assert scheduled.status == 200 and len((await scheduled.json())["next"]) == 3
    bad = await browser.post("/admin/api/training/schedule", {"cron": "every day"})
    assert bad.status == 400 and "cron" in (await bad.json())["error"]
    off = await browser.post("/admin/api/training/schedule", {"cron": ""})
    assert "off" in (await off.json())["message"]
    asked = [args[1:] for call, args in admin.calls if call == "training.schedule"]
    assert asked == [("0 3 * * 0",), ("every day",), (None,)]
    assert [call for call, _ in admin.calls if call == "training.cancel"] == ["training.cancel"]
    log = await app.db.run(app.gate.audit.recent)
    actions = [e["action"] for e in log]
    for action in ("retrain.now", "retrain.cancel", "retrain.schedule"):
        assert action in actions
    assert all(e["actor"].startswith("web-admin-") for e in log)


async def test_curation_add_upload_list_remove(admin_browser: Browser) -> None:
    browser = admin_browser
    added = await browser.post("/admin/api/curation/add", {"text": "A <script>x</script> line"})
    assert (await added.json())["message"] == "Added 1."
    empty = await browser.post("/admin/api/curation/add", {"text": "  "})
    assert empty.status == 400
    form = aiohttp.FormData()
    form.add_field(
        "file", b"first line\nsecond line\n", filename="data.txt", content_type="text/plain"
    )
    uploaded = await browser.client.post(
        "/admin/api/curation/upload", data=form, headers=browser.headers()
    )
    assert uploaded.status == 200 and "data.txt: added 2" in (await uploaded.json())["message"]
    no_file = await browser.client.post(
        "/admin/api/curation/upload", data=aiohttp.FormData({"x": "1"}), headers=browser.headers()
    )
    assert no_file.status == 400
    items = (await (await browser.client.get("/admin/api/curation")).json())["items"]
    assert [i["text"] for i in items] == ["second line", "first line", "A <script>x</script> line"]
    removed = await browser.post("/admin/api/curation/remove", {"id": items[0]["id"]})
    assert removed.status == 200
    missing = await browser.post("/admin/api/curation/remove", {"id": 99})
    assert missing.status == 404
    items = (await (await browser.client.get("/admin/api/curation")).json())["items"]
    assert len(items) == 2


async def test_model_use_and_rollback_switch_the_serving_version(
    app: App, admin_browser: Browser
) -> None:
    browser = admin_browser
    versions = ModelVersionRepository(app.db)
    active = await app.db.run(versions.active)
    assert active is not None
    await app.db.run(versions.add, "copy-1", active.path, "bootstrap", "bootstrap-1")
    used = await browser.post("/admin/api/models/use", {"version": "copy-1"})
    said = await used.json()
    assert used.status == 200 and said["message"].startswith(
        "Now serving copy-1 here, and the database names it the active version"
    )
    assert said["fleet"]["active"] == "copy-1"  # and how the live processes follow it
    assert app.backend.model_version == "copy-1"
    assert (await browser.start())["model_version"] == "copy-1"
    missing = await browser.post("/admin/api/models/use", {"version": "nope"})
    assert missing.status == 404
    back = await browser.post("/admin/api/models/rollback", {})
    assert (await back.json())["message"].startswith("Rolled back. Now serving bootstrap-1 here")
    assert app.backend.model_version == "bootstrap-1"
    audit = await (await browser.client.get("/admin/api/audit")).json()
    assert [e["action"] for e in audit["entries"][:3]] == [
        "model.rollback",
        "model.use",
        "model.use",
    ]


async def test_training_runs_come_with_their_loss_log(app: App, browser: Browser) -> None:
    with app.db.session() as session:
        session.add(
            TrainingRun(
                trigger="schedule",
                requested_by="scheduler",
                status="failed",
                dataset_size=7,
                loss_log=[{"step": 1, "loss": 3.5}, {"step": 2, "loss": 3.1}],
                error="Not enough curated samples: add at least 8.",
            )
        )
    await browser.login()
    body = await (await browser.client.get("/admin/api/training")).json()
    # the real training service reports the most recent run as the current one
    assert body["current"]["status"] == "failed"
    [run] = body["runs"]
    assert body["current"]["id"] == run["id"]
    assert run["status"] == "failed" and run["trigger"] == "schedule"
    assert run["loss_log"] == [{"step": 1, "loss": 3.5}, {"step": 2, "loss": 3.1}]
    assert run["error"].startswith("Not enough curated samples")


async def test_generations_page_backwards_with_before_id(
    browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "PAGE_SIZE", 2)
    ids = [await make_generation(browser, f"Page {i}") for i in range(3)]
    await browser.login()
    first = await (await browser.client.get("/admin/api/generations")).json()
    assert [g["id"] for g in first["generations"]] == ids[:0:-1] and first["more"] is True
    older = await browser.client.get("/admin/api/generations", params={"before_id": ids[1]})
    body = await older.json()
    assert [g["id"] for g in body["generations"]] == [ids[0]] and body["more"] is False
    bad = await browser.client.get("/admin/api/generations", params={"before_id": "x"})
    assert bad.status == 400


async def test_the_dashboard_shows_each_process_and_what_it_serves(
    app: App, admin_browser: Browser
) -> None:
    await app.follower.start()  # as `gpt2bot run` starts it
    fleet = await (await admin_browser.client.get("/admin/api/fleet")).json()
    (process,) = fleet["processes"]
    assert fleet["active"] == "bootstrap-1" and fleet["candidate"] is None
    assert (process["served_version"], process["serves_database_choice"]) == ("bootstrap-1", True)
    assert process["pid"] == os.getpid() and not process["lagging"]
    assert fleet["summary"] == "1 live process: all serve it."


async def test_a_gate_refusal_is_a_409_sentence_that_says_how_to_force(
    scripted_admin_browser: tuple[Browser, App, ScriptedAdmin],
) -> None:
    """`models/use` of a version the promotion gate refuses: the reason and the Force box,
    as a 4xx JSON answer (it was a 500 "Something went wrong"); forced, it switches."""
    browser, _, admin = scripted_admin_browser

    def use(actor: str, version: str, force: bool) -> Any:
        if version != "v2":
            raise no_version(version)
        if not force:
            raise PromotionRefused(
                "v2 was not promoted: its held-out loss 3.6000 is worse than the active v1's "
                "3.0000."
            )
        return version_record("v2", "active", parent="v1", metrics={"eval_loss": 3.6})

    admin.answers["registry.use"] = use

    refused = await browser.post("/admin/api/models/use", {"version": "v2"})

    assert refused.status == 409
    assert (await refused.json())["error"] == (
        "v2 was not promoted: its held-out loss 3.6000 is worse than the active v1's 3.0000. "
        "To promote it anyway, tick Force and press its Use button again."
    )
    forced = await browser.post("/admin/api/models/use", {"version": "v2", "force": True})
    assert forced.status == 200
    assert (await forced.json())["message"].startswith("Now serving v2 here")
    unknown = await browser.post("/admin/api/models/use", {"version": "v9"})
    assert (
        unknown.status == 404 and "no model version named 'v9'" in (await unknown.json())["error"]
    )
