"""Helpers for the web platform's tests: settings for a real App on a tmp SQLite with a tiny
bootstrap model, the web platform's own config, and a "browser" over aiohttp's test client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.chat import ChatConfig
from bot.platforms.web import WebConfig
from bot.platforms.web.security import CSRF_HEADER
from bot.settings import Settings
from model.bootstrap import BootstrapConfig
from model.config import ModelConfig
from storage import StorageConfig

ADMIN_TOKEN = "test-admin-token-0123456789"
TINY = BootstrapConfig(
    vocab_size=300,
    n_layer=1,
    n_head=2,
    n_embd=32,
    n_positions=128,
    block_size=32,
    batch_size=4,
    steps=3,
    warmup_steps=1,
)


def make_settings(tmp_path: Path, model_dir: Path) -> Settings:
    return Settings(
        storage=StorageConfig(url=f"sqlite:///{tmp_path / 'gpt2bot.db'}"),
        model=ModelConfig(model_dir=model_dir, base_model="bootstrap", device="cpu"),
        chat=ChatConfig(cooldown_s=0.0),  # the cooldown has its own test
    )


def web_config(tmp_path: Path) -> WebConfig:
    """The web platform's settings (its own section since platforms read their config)."""
    return WebConfig(admin_token=ADMIN_TOKEN, admin_token_file=tmp_path / "admin_token")


class Browser:
    """An aiohttp test client that behaves like one browser: cookies plus the CSRF header."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    async def start(self) -> dict[str, Any]:
        response = await self.client.get("/api/session")
        assert response.status == 200
        body = await response.json()
        self.csrf = body["csrf"]
        return body

    def headers(self) -> dict[str, str]:
        return {CSRF_HEADER: self.csrf}

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return await self.client.post(path, json=body, headers=self.headers(), **kwargs)

    async def login(self) -> None:
        response = await self.post("/admin/api/login", {"token": ADMIN_TOKEN})
        assert response.status == 200, await response.text()


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = block.split("\n")
        name = next(line[7:] for line in lines if line.startswith("event: "))
        data = "\n".join(line[6:] for line in lines if line.startswith("data: "))
        events.append((name, json.loads(data)))
    return events


async def open_browser(web_app: Any) -> tuple[TestClient, Browser]:
    client = TestClient(TestServer(web_app))
    await client.start_server()
    browser = Browser(client)
    try:
        await browser.start()
    except BaseException:
        await client.close()
        raise
    return client, browser
