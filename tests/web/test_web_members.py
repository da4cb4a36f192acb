"""A browser's own data, and fair use on the web: cooldown, new ids per address, logins."""

from __future__ import annotations

import json
from dataclasses import replace

from web_helpers import ADMIN_TOKEN, Browser, open_browser, parse_sse

from bot.app import App
from bot.platforms.web import build_web_app
from bot.platforms.web.security import Guard
from storage import CuratedSampleRepository, GenerationRepository


async def generate(browser: Browser, prompt: str) -> dict:
    response = await browser.post("/api/generate", {"prompt": prompt, "params": {"seed": 3}})
    events = parse_sse(await response.text())
    assert events[-1][0] == "done", events
    return events[-1][1]["generations"][0]


async def test_a_conversation_reads_back_only_in_its_browser(app: App, browser: Browser) -> None:
    first = await generate(browser, "Once upon a time")
    response = await browser.post(f"/api/generations/{first['id']}/continue")
    child = next(d for e, d in parse_sse(await response.text()) if e == "done")["generations"][0]

    read = await browser.client.get(f"/api/conversations/{first['conversation_id']}")
    chain = (await read.json())["generations"]
    assert [g["id"] for g in chain] == [first["id"], child["id"]]
    assert chain[1]["parent_id"] == first["id"] and chain[1]["kind"] == "continue"

    client, other = await open_browser(build_web_app(app, Guard(admin_token=ADMIN_TOKEN)))
    try:
        refused = await other.client.get(f"/api/conversations/{first['conversation_id']}")
        assert refused.status == 404
    finally:
        await client.close()


async def test_mydata_download_then_delete(app: App, browser: Browser) -> None:
    mine = await generate(browser, "A very personal prompt")
    await browser.post(f"/api/generations/{mine['id']}/rating", {"emoji": "👍"})

    download = await browser.client.get("/api/mydata")
    assert download.headers["Content-Disposition"].startswith("attachment;")
    rows = [json.loads(line) for line in (await download.text()).splitlines()]
    assert [r["type"] for r in rows] == ["generation", "rating"]
    assert rows[0]["prompt"] == "A very personal prompt"

    unconfirmed = await browser.post("/api/mydata/delete", {})
    assert unconfirmed.status == 400 and "cannot be undone" in (await unconfirmed.json())["error"]
    deleted = await browser.post("/api/mydata/delete", {"confirm": True})
    assert "1 generation(s), 1 rating(s)" in (await deleted.json())["message"]

    record = GenerationRepository(app.db).get(mine["id"])
    assert (record.prompt, record.output, record.ratings) == ("", "", [])
    assert CuratedSampleRepository(app.db).sync_from_ratings(1, 1) == (0, 0)
    assert (await (await browser.client.get("/api/mydata")).text()).count("personal") == 0


async def test_the_cooldown_applies_on_the_web(app: App, browser: Browser) -> None:
    app.chat.config = replace(app.chat.config, cooldown_s=60.0)
    await generate(browser, "First")
    again = await browser.post("/api/generate", {"prompt": "Second", "params": {}})
    assert again.status == 400
    assert "Slow down a little: you can ask again in" in (await again.json())["error"]


async def test_dropping_the_cookie_does_not_give_endless_new_browsers(app: App) -> None:
    guard = Guard(admin_token=ADMIN_TOKEN, new_clients_per_hour=3)
    client, _ = await open_browser(build_web_app(app, guard))
    try:
        statuses = []
        for _ in range(5):
            client.session.cookie_jar.clear()  # a script that drops its cookie every time
            statuses.append((await client.get("/api/session")).status)
        assert statuses == [200, 200, 429, 429, 429]  # opening the browser made the first
        page = await client.get("/")  # the page itself still loads
        assert page.status == 200
    finally:
        await client.close()


async def test_wrong_admin_tokens_lock_logins_from_the_address(app: App) -> None:
    guard = Guard(admin_token=ADMIN_TOKEN, login_attempts=3)
    client, browser = await open_browser(build_web_app(app, guard))
    try:
        answers = []
        for attempt in range(5):
            response = await browser.post("/admin/api/login", {"token": f"wrong-{attempt}"})
            answers.append(response.status)
        assert answers == [403, 403, 429, 429, 429]  # the third wrong try locks
        right = await browser.post("/admin/api/login", {"token": ADMIN_TOKEN})
        assert right.status == 429  # locked: even the right token waits
        assert "locked for" in (await right.json())["error"]
        actions = [(e["action"], e["allowed"]) for e in app.gate.audit.recent(20)]
        assert ("web.login.locked", False) in actions
        assert sum(1 for a in actions if a == ("web.login", False)) == 6
    finally:
        await client.close()


async def test_the_dashboard_sets_a_servers_settings(app: App, admin_browser: Browser) -> None:
    from bot.chat import Origin

    in_server = Origin("discord", "m1", guild_id="g-42", channel_id="c1")
    await app.chat.generate(in_server, "Hello from a server")
    listed = await (await admin_browser.client.get("/admin/api/servers")).json()
    assert [(s["platform"], s["server_id"]) for s in listed["servers"]] == [("discord", "g-42")]

    update = {
        "platform": "discord",
        "server_id": "g-42",
        "max_new_tokens_cap": "5",
        "cooldown_s": "",
        "samples_cap": "",
        "allowed_channels": "",
        "ratings_train": False,
    }
    saved = await admin_browser.post("/admin/api/servers/update", update)
    assert saved.status == 200, await saved.text()
    record = await app.admin.servers.get("discord", "g-42")
    assert (record.max_new_tokens_cap, record.ratings_train) == (5, False)
    bad = await admin_browser.post("/admin/api/servers/update", {**update, "samples_cap": "9"})
    assert bad.status == 400 and "samples cap must be" in (await bad.json())["error"]
    entry = app.gate.audit.recent(1)[0]
    assert (entry["action"], entry["scope"], entry["allowed"]) == ("server.set", "server", True)


async def test_the_report_button_hides_an_output_after_enough_reports(
    app: App, browser: Browser
) -> None:
    app.chat.config = replace(app.chat.config, reports_to_hide=1)
    mine = await generate(browser, "Report me")
    response = await browser.post(f"/api/generations/{mine['id']}/report", {})
    assert (await response.json()) == {
        "message": "Reported: thanks. It is hidden until an admin looks.",
        "hidden": True,
    }
    assert GenerationRepository(app.db).get(mine["id"]).hidden
    missing = await browser.post("/api/generations/99999/report", {})
    assert missing.status == 404
