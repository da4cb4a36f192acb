"""The dashboard's Servers panel shows and sets a server's prompt template."""

from __future__ import annotations

from web_helpers import Browser

from bot.app import App
from bot.chat import Origin


async def test_the_servers_panel_sets_and_shows_a_servers_template(
    app: App, admin_browser: Browser
) -> None:
    await app.chat.generate(Origin("discord", "m1", "g-7", "c1"), "Hello")
    update = {"platform": "discord", "server_id": "g-7", "allowed_channels": "", "cooldown_s": ""}

    refused = await admin_browser.post("/admin/api/servers/update", {**update, "template": "Hi"})
    assert refused.status == 400
    assert "{prompt} exactly once" in (await refused.json())["error"]
    saved = await admin_browser.post(
        "/admin/api/servers/update", {**update, "template": "Tell a story: {prompt}"}
    )
    assert saved.status == 200, await saved.text()
    listed = await (await admin_browser.client.get("/admin/api/servers")).json()
    assert listed["servers"][0]["templates"] == {"": "Tell a story: {prompt}"}

    made = await app.chat.generate(Origin("discord", "m1", "g-7", "c1"), "a fox")
    assert made.generations[0].prompt == "Tell a story: a fox"
    assert made.generations[0].template == "Tell a story: {prompt}"

    cleared = await admin_browser.post("/admin/api/servers/update", {**update, "template": ""})
    assert cleared.status == 200
    assert (await app.admin.servers.get("discord", "g-7")).templates == {}
