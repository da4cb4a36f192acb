"""Helpers for the web platform's tests: settings for a real App on a tmp SQLite with a tiny
bootstrap model, an in-test AdminService, and a "browser" over aiohttp's test client."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from admin.base import AlreadyRunning, CuratedItem, CurationReport, TrainingRunInfo
from bot.app import App
from bot.platforms.web.security import CSRF_HEADER
from bot.settings import Settings, WebConfig
from model.bootstrap import BootstrapConfig
from model.config import ModelConfig
from storage import ModelVersionRecord, StorageConfig, VersionRatingStats

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
        web=WebConfig(admin_token=ADMIN_TOKEN, admin_token_file=tmp_path / "admin_token"),
    )


class InTestAdmin:
    """A small, honest implementation of the `AdminService` Protocol for these tests (the
    learning loop's real one lives on another branch): it keeps curation and runs in memory
    and switches versions through the real repository and backend."""

    async def close(self) -> None:
        """Nothing to release (the real service stops its scheduler here)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.items: list[CuratedItem] = []
        self.runs: list[TrainingRunInfo] = []
        self.schedule: str | None = None
        self.calls: list[tuple[str, str]] = []

    async def curate_add(self, actor: str, texts: list[str]) -> CurationReport:
        self.calls.append(("curate_add", actor))
        now = datetime.now(UTC)
        for text in texts:
            self.items.append(CuratedItem(len(self.items) + 1, text, "admin", actor, now, True))
        return CurationReport(added=len(texts))

    async def curate_add_file(self, actor: str, filename: str, content: bytes) -> CurationReport:
        lines = content.decode().splitlines()
        if filename.endswith(".jsonl"):
            lines = [json.loads(line)["text"] for line in lines if line.strip()]
        return await self.curate_add(actor, [line for line in lines if line.strip()])

    async def curate_list(self, limit: int = 20) -> list[CuratedItem]:
        return [i for i in reversed(self.items) if i.active][:limit]

    async def curate_remove(self, actor: str, sample_id: int) -> None:
        for index, item in enumerate(self.items):
            if item.id == sample_id and item.active:
                self.items[index] = replace(item, active=False)
                return
        raise LookupError(f"there is no curated sample #{sample_id}")

    async def retrain_now(self, actor: str, progress: Any = None) -> TrainingRunInfo:
        if self.runs and self.runs[-1].status == "running":
            raise AlreadyRunning("a training run is already in progress (40% done)")
        run = TrainingRunInfo(
            id=len(self.runs) + 1,
            status="running",
            trigger="manual",
            requested_by=actor,
            progress=0.4,
            eta_s=12.0,
            dataset_size=len(self.items),
            model_version=None,
            promoted=None,
            eval_before={},
            eval_after={},
            error=None,
            created_at=datetime.now(UTC),
            finished_at=None,
        )
        self.runs.append(run)
        return run

    async def retrain_status(self) -> TrainingRunInfo | None:
        return self.runs[-1] if self.runs else None

    async def retrain_cancel(self, actor: str) -> bool:
        if not self.runs or self.runs[-1].status != "running":
            return False
        self.runs[-1] = replace(self.runs[-1], status="cancelled")
        return True

    async def retrain_schedule(self, actor: str, cron: str | None) -> list[datetime]:
        if cron is not None and len(cron.split()) != 5:
            raise ValueError(f"{cron!r} is not a cron expression: use five fields")
        self.schedule = cron
        now = datetime.now(UTC)
        return [] if cron is None else [now + timedelta(days=7 * i) for i in (1, 2, 3)]

    async def models_list(self) -> list[ModelVersionRecord]:
        return await self.app.db.run(self.app.versions.list)

    async def model_use(self, actor: str, version: str, force: bool = False) -> ModelVersionRecord:
        record = await self.app.db.run(self.app.versions.get, version)
        if record is None:
            raise LookupError(f"there is no model version {version}")
        activated = await self.app.db.run(self.app.versions.activate, version)
        await self.app.backend.swap(activated.name, activated.path)
        return activated

    async def model_rollback(self, actor: str) -> ModelVersionRecord:
        previous = await self.app.db.run(self.app.versions.previous_active)
        if previous is None:
            raise ValueError("there is no earlier active version to roll back to")
        return await self.model_use(actor, previous.name)

    async def stats(self) -> list[VersionRatingStats]:
        return []

    async def stats_chart(self) -> bytes:
        return b""


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
