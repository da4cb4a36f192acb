"""The playground's endpoints through aiohttp's test client, against a real App."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from web_helpers import ADMIN_TOKEN, Browser, make_settings, open_browser, parse_sse

from bot.app import App
from bot.platforms.web import build_web_app
from bot.platforms.web.security import CLIENT_COOKIE, Guard
from model.backends.base import Cancelled
from model.backends.fake import ScriptedBackend
from storage import GenerationRepository

XSS = "<img src=x onerror=alert(1)>"


async def generate(browser: Browser, prompt: str, **params: Any) -> list[tuple[str, Any]]:
    response = await browser.post("/api/generate", {"prompt": prompt, "params": params})
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return parse_sse(await response.text())


async def test_pages_and_static_files_are_served(browser: Browser) -> None:
    pages = [
        ("/", "playground.js"),
        ("/admin", "dashboard.js"),
        ("/static/style.css", ".card"),
        ("/static/common.js", "textContent"),
    ]
    for path, marker in pages:
        response = await browser.client.get(path)
        assert response.status == 200, path
        assert marker in await response.text()
    page = await browser.client.get("/")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert "GPT-2" in await page.text() and "not" in await page.text()  # the good/bad note


async def test_session_gives_limits_defaults_and_a_browser_cookie(browser: Browser) -> None:
    body = await browser.start()
    assert body["limits"]["temperature"] == [0.0, 2.0]
    assert body["defaults"]["max_new_tokens"] == 64 and "seed" not in body["defaults"]
    assert body["model_version"] == "bootstrap-1" and body["is_admin"] is False
    cookies = {c.key: c for c in browser.client.session.cookie_jar}
    assert cookies[CLIENT_COOKIE]["httponly"] and cookies[CLIENT_COOKIE]["samesite"] == "Strict"


async def test_generate_streams_queue_chunks_and_stored_generation(browser: Browser) -> None:
    events = await generate(browser, "The cat", max_new_tokens=8, seed=3, samples=2)
    names = [name for name, _ in events]
    assert names[0] == "queued" and names[-1] == "done" and "chunk" in names
    streamed = {0: "", 1: ""}
    for name, data in events:
        if name == "chunk":
            streamed[data["sample"]] += data["text"]
    done = events[-1][1]["generations"]
    assert [g["output"] for g in done] == [streamed[0], streamed[1]]
    assert done[0]["prompt"] == "The cat" and done[0]["seed"] == "3" and done[1]["seed"] == "4"
    assert done[0]["params"]["max_new_tokens"] == 8 and done[0]["model_version"] == "bootstrap-1"


async def test_invalid_input_is_a_sentence_not_a_traceback(browser: Browser) -> None:
    for body, expected in [
        ({"prompt": "  "}, "The prompt is empty"),
        ({"prompt": "x", "params": {"temperature": "hot"}}, "temperature must be a number"),
        ({"prompt": "x", "params": {"top_k": 5000}}, "top_k must be an integer from 0 to 1000"),
        ({"prompt": "x", "params": {"colour": 1}}, "Unknown option colour"),
        ({"prompt": "x" * 2001}, "the limit is 2000"),
    ]:
        response = await browser.post("/api/generate", body)
        assert response.status == 400
        assert expected in (await response.json())["error"]
    raw = await browser.client.post("/api/generate", data="{not json", headers=browser.headers())
    assert raw.status == 400 and "not valid JSON" in (await raw.json())["error"]


async def test_busy_backend_answers_429_with_retry_after(tmp_path: Path, model_dir: Path) -> None:
    full = ScriptedBackend(busy_retry_s=29.6)  # refuses every request with `Busy`
    app = await App.open(make_settings(tmp_path, model_dir), backend=full)
    client, browser = await open_browser(build_web_app(app, Guard(admin_token=ADMIN_TOKEN)))
    try:
        response = await browser.post("/api/generate", {"prompt": "hello"})
        assert response.status == 429 and response.headers["Retry-After"] == "30"
        assert "busy" in (await response.json())["error"]
    finally:
        await client.close()
        await app.close()


async def test_writes_without_the_csrf_token_are_refused(browser: Browser) -> None:
    response = await browser.client.post("/api/generate", json={"prompt": "hi"})
    assert response.status == 403
    assert "reload" in (await response.json())["error"]
    forged = await browser.client.post(
        "/api/generate", json={"prompt": "hi"}, headers={"X-CSRF-Token": "0" * 64}
    )
    assert forged.status == 403


async def test_rate_change_and_remove_like_reactions(browser: Browser) -> None:
    gid = (await generate(browser, "Rate me", max_new_tokens=4))[-1][1]["generations"][0]["id"]
    up = await browser.post(f"/api/generations/{gid}/rating", {"emoji": "👍"})
    assert (await up.json())["generation"]["my_rating"] == "👍"
    down = await browser.post(f"/api/generations/{gid}/rating", {"emoji": "👎"})
    body = (await down.json())["generation"]
    assert body["my_rating"] == "👎" and body["ratings_up"] == 0 and body["ratings_down"] == 1
    bad = await browser.post(f"/api/generations/{gid}/rating", {"emoji": "🎉"})
    assert bad.status == 400 and "👍 or 👎" in (await bad.json())["error"]
    removed = await browser.client.delete(
        f"/api/generations/{gid}/rating", headers=browser.headers()
    )
    assert (await removed.json())["generation"]["my_rating"] is None
    missing = await browser.post("/api/generations/999/rating", {"emoji": "👍"})
    assert missing.status == 404 and "no generation #999" in (await missing.json())["error"]


async def test_regenerate_and_continue_grow_the_conversation(browser: Browser) -> None:
    first = (await generate(browser, "Once", max_new_tokens=4))[-1][1]["generations"][0]
    regen = await browser.post(f"/api/generations/{first['id']}/regenerate")
    sibling = parse_sse(await regen.text())[-1][1]["generations"][0]
    assert sibling["kind"] == "regenerate" and sibling["prompt"] == "Once"
    assert (
        sibling["conversation_id"] == first["conversation_id"] and sibling["seed"] != first["seed"]
    )
    cont = await browser.post(f"/api/generations/{first['id']}/continue")
    child = parse_sse(await cont.text())[-1][1]["generations"][0]
    assert child["kind"] == "continue" and child["parent_id"] == first["id"]
    # the text so far, exactly (an output may end in whitespace or a cut-off character)
    assert child["prompt"] == first["prompt"] + first["output"]
    assert child["conversation_id"] == first["conversation_id"]
    bad = await browser.post("/api/generations/abc/continue")
    assert bad.status == 404


async def test_history_is_per_browser_and_others_cannot_touch_it(
    app: App, browser: Browser
) -> None:
    gid = (await generate(browser, "Mine", max_new_tokens=4))[-1][1]["generations"][0]["id"]
    mine = await (await browser.client.get("/api/history")).json()
    assert [g["id"] for g in mine["generations"]] == [gid]
    client, other = await open_browser(build_web_app(app, Guard(admin_token=ADMIN_TOKEN)))
    try:
        theirs = await (await other.client.get("/api/history")).json()
        assert theirs["generations"] == []
        for path in ("rating", "regenerate", "continue"):
            body = {"emoji": "👍"} if path == "rating" else None
            response = await other.post(f"/api/generations/{gid}/{path}", body)
            assert response.status == 404, path
    finally:
        await client.close()


async def test_user_written_html_is_returned_as_data_never_as_markup(browser: Browser) -> None:
    done = (await generate(browser, XSS, max_new_tokens=2))[-1][1]["generations"][0]
    assert done["prompt"] == XSS  # JSON data; the page renders it with textContent
    history = await (await browser.client.get("/api/history")).json()
    assert history["generations"][0]["prompt"] == XSS
    for path in ("/", "/admin"):
        assert XSS not in await (await browser.client.get(path)).text()


async def test_unexpected_errors_are_a_sentence_with_an_incident_id(
    app: App, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(app.db, "run", broken)
    response = await browser.client.get("/api/history")
    assert response.status == 500
    message = (await response.json())["error"]
    assert "incident" in message and "fire" not in message and "Traceback" not in message


def test_entry_point_is_registered() -> None:
    from bot import plugins
    from bot.platforms.web import create

    # `gpt2bot.platforms: web` is the package's `create` (defined in its platform module)
    assert plugins.load(plugins.PLATFORM_GROUP, "web") is create
    assert isinstance(web.Application, type)


async def test_leaving_mid_generation_cancels_the_work(
    app: App, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    handles: list[Any] = []
    real_submit = app.backend.submit

    def spy(request: Any) -> Any:
        handles.append(real_submit(request))
        return handles[-1]

    monkeypatch.setattr(app.backend, "submit", spy)
    response = await browser.post(
        "/api/generate",
        {"prompt": "Leave", "params": {"samples": 4, "max_new_tokens": 512, "seed": 1}},
    )
    assert (await response.content.readuntil(b"\n\n")).startswith(b"event: queued")
    response.close()  # the browser goes away (tab closed, Stop pressed)
    with pytest.raises(Cancelled):
        await asyncio.wait_for(handles[0].result(), timeout=20)
    assert GenerationRepository(app.db).count() == 0  # nothing half-done was stored
    history = await (await browser.client.get("/api/history")).json()
    assert history["generations"] == []  # and nothing half-done was stored
