"""The web server's /healthz, /readyz and /metrics with the real engine and tiny model."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError
from web_helpers import ADMIN_TOKEN, Browser, make_settings, open_browser

from bot.app import App
from bot.chat import Origin
from bot.platforms.web import build_web_app
from bot.platforms.web.security import Guard
from model.backends.base import Chunk
from model.backends.fake import ScriptedBackend

# the tiny model often ends a sample at EOS after a few tokens, so a scrape may land after
# one or both samples finished; then another seed tries again
ATTEMPTS = 10


async def scrape(browser: Browser) -> dict[str, float]:
    """`name{label="v",...}` -> value, from the Prometheus text format."""
    response = await browser.client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def test_healthz_and_readyz_report_database_and_model(browser: Browser, app: App) -> None:
    health = await browser.client.get("/healthz")
    assert health.status == 200 and await health.text() == "ok\n"
    ready = await browser.client.get("/readyz")
    assert ready.status == 200
    body = await ready.json()
    assert body["ready"] is True
    assert body["checks"] == {"database": "ok", "model": f"ok: {app.backend.model_version}"}


async def test_readyz_is_503_and_names_the_database_when_it_fails(
    browser: Browser, app: App, monkeypatch
) -> None:
    def unreachable() -> None:
        raise OperationalError("SELECT 1", {}, Exception("unable to open database file"))

    monkeypatch.setattr(app.db, "ping", unreachable)
    ready = await browser.client.get("/readyz")
    assert ready.status == 503
    body = await ready.json()
    assert body["ready"] is False and body["checks"]["model"].startswith("ok")
    assert body["checks"]["database"].startswith("unreachable: OperationalError")
    assert "\n" not in body["checks"]["database"]
    assert (await browser.client.get("/healthz")).status == 200  # alive, just not ready


async def test_metrics_show_live_engine_numbers_during_a_generation(
    browser: Browser, app: App
) -> None:
    origin = Origin(platform="web", user_id="metrics")
    during: dict[str, float] = {}
    for attempt in range(ATTEMPTS):
        stream = app.chat.generate_stream(
            origin, "A language model", {"max_new_tokens": 400, "samples": 2, "seed": attempt}
        )
        async for event in stream:
            if isinstance(event, Chunk) and not during:
                during = await scrape(browser)
                if during["gpt2bot_engine_running_rows"] < 2:
                    during = {}  # a sample finished first; the next attempt scrapes again
        if during:
            break
    assert during, "every generation finished before /metrics answered"
    assert during["gpt2bot_engine_running_requests"] == 1  # both samples decode together
    assert during["gpt2bot_engine_running_rows"] == 2
    version = app.backend.model_version
    assert during[f'gpt2bot_engine_running_rows_by_version{{version="{version}"}}'] == 2
    assert during["gpt2bot_engine_queue_depth"] == 0

    after = await scrape(browser)
    assert after["gpt2bot_engine_tokens_per_second"] > 0
    assert after['gpt2bot_engine_requests_total{outcome="completed"}'] >= 1
    assert after["gpt2bot_generation_latency_seconds_count"] == attempt + 1
    assert after["gpt2bot_generation_ttft_seconds_count"] == attempt + 1
    labels = f'model_version="{version}",platform="web"'
    assert after[f"gpt2bot_generations_total{{{labels}}}"] == 2 * (attempt + 1)
    assert after[f"gpt2bot_completion_tokens_total{{{labels}}}"] > 0
    assert after[f'gpt2bot_model_info{{version="{version}"}}'] == 1
    assert after["gpt2bot_training_running"] == 0


async def test_metrics_count_ratings_by_version_and_refusals(tmp_path: Path, model_dir: Path):
    backend = ScriptedBackend(model_version="v7")
    app = await App.open(make_settings(tmp_path, model_dir), backend=backend)
    client, browser = await open_browser(build_web_app(app, Guard(admin_token=ADMIN_TOKEN)))
    try:
        origin = Origin(platform="web", user_id="author")
        finished = await app.chat.generate(origin, "Rate me", {"samples": 2})
        first, second = (g.id for g in finished.generations)
        await app.chat.rate(first, "alice", "👍")
        await app.chat.rate(first, "bob", "👍")
        await app.chat.rate(second, "carol", "👎")
        backend.busy_retry_s = 3
        response = await browser.post("/api/generate", {"prompt": "hello"})
        assert response.status == 429
        samples = await scrape(browser)
    finally:
        await client.close()
        await app.close()
    assert samples['gpt2bot_ratings{model_version="v7",score="up"}'] == 2
    assert samples['gpt2bot_ratings{model_version="v7",score="down"}'] == 1
    assert samples['gpt2bot_stored_generations{model_version="v7"}'] == 2
    assert samples['gpt2bot_refusals_total{reason="busy"}'] == 1
    # a backend without its own metrics still reports the version it serves
    assert samples['gpt2bot_model_info{version="v7"}'] == 1
    assert "gpt2bot_engine_queue_depth" not in samples


async def test_two_apps_in_one_process_keep_their_own_numbers(
    tmp_path: Path, model_dir: Path
) -> None:
    apps = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        apps.append(await App.open(make_settings(folder, model_dir), backend=ScriptedBackend()))
    try:
        await apps[0].chat.generate(Origin(platform="web", user_id="u"), "hi")
        texts = await asyncio.gather(*(asyncio.to_thread(a.metrics.exposition) for a in apps))
    finally:
        for opened in apps:
            await opened.close()
    assert b"gpt2bot_generation_latency_seconds_count 1.0" in texts[0]
    assert b"gpt2bot_generation_latency_seconds_count 0.0" in texts[1]
