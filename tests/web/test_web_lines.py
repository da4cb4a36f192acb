"""The dashboard's model-lines panel: every server's own line, what it is served, its versions."""

from __future__ import annotations

from bot.app import App
from storage import ModelVersionRepository
from tests.web.web_helpers import Browser


async def test_the_dashboard_shows_each_servers_line(admin_browser: Browser, app: App) -> None:
    empty = await (await admin_browser.client.get("/admin/api/lines")).json()
    assert empty == {"lines": []}

    await app.admin.lines.allow("owner", "discord:111", enabled=True)
    versions = ModelVersionRepository(app.db)
    shared = versions.active()
    assert shared is not None
    versions.add("a-1", shared.path, "bootstrap", base_version=shared.name, line="discord:111")
    versions.activate("a-1")
    data = await (await admin_browser.client.get("/admin/api/lines")).json()
    [line] = data["lines"]
    assert (line["server"], line["enabled"], line["served"], line["shares"]) == (
        "discord:111",
        True,
        "a-1",
        False,
    )
    assert [v["name"] for v in line["versions"]] == ["a-1"]
    models = await (await admin_browser.client.get("/admin/api/models")).json()
    assert "a-1" not in [m["name"] for m in models["models"]]  # the shared line's panel
