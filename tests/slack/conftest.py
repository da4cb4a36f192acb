"""Fixtures: the real slack-bolt app behind its aiohttp server, a fake Slack Web API, and a
client that signs requests the way Slack does. Everything talks HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from slack_sdk.signature import SignatureVerifier

from admin.base import AdminServices
from admin.config import AdminConfig
from admin.fake import ScriptedAdmin, scripted_admin, version_record
from bot.app import App
from bot.chat import ChatConfig
from bot.platforms.base import RunOptions
from bot.platforms.slack import EVENTS_PATH, SlackConfig, SlackPlatform
from bot.settings import Settings
from model.backends.fake import ScriptedBackend
from storage import StorageConfig, VersionRatingStats
from tests.slack.fake_slack import TEAM_ID, FakeSlack

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ADMIN = "UADMIN"
EDIT_INTERVAL_S = 0.2  # the production 1 s, scaled down so tests stay quick
# what the scripted backend streams, one word per chunk: output and timing are predictable
WORDS = (" there", " was", " a", " small", " bot", " that", " wrote", " stories", ".", " The")


async def eventually(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll `condition` (e.g. a database read) until it is truthy; event handlers run after
    Slack's request has been answered, so their effects show up a little later."""
    async with asyncio.timeout(timeout):
        while not (value := condition()):
            await asyncio.sleep(0.02)
    return value


def command_form(
    command: str, text: str, user: str, channel: str, response_url: str
) -> dict[str, str]:
    """The fields Slack sends with a slash command."""
    return {
        "token": "legacy",
        "team_id": TEAM_ID,
        "team_domain": "test",
        "channel_id": channel,
        "channel_name": "general",
        "user_id": user,
        "user_name": user.lower(),
        "command": command,
        "text": text,
        "api_app_id": "A0001",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": "13345224609.8534",
    }


class SignedClient:
    """Sends the bot what Slack sends: form-encoded slash commands and JSON events, signed."""

    def __init__(self, url: str, fake: FakeSlack, session: aiohttp.ClientSession) -> None:
        self.url, self.fake, self.session = url, fake, session
        self._event_ids = 0

    async def post(
        self, body: str, content_type: str, secret: str = SECRET, timestamp: int | None = None
    ) -> tuple[int, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = str(SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body))
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature,
        }
        async with self.session.post(self.url + EVENTS_PATH, data=body, headers=headers) as r:
            return r.status, await r.text()

    def command_body(self, command: str, text: str, user: str, channel: str) -> str:
        return urlencode(command_form(command, text, user, channel, self.fake.response_url()))

    async def command(
        self, command: str, text: str, user: str = "U1", channel: str = "C1", **kwargs: Any
    ) -> tuple[int, str]:
        body = self.command_body(command, text, user, channel)
        return await self.post(body, "application/x-www-form-urlencoded", **kwargs)

    async def event(self, event: dict[str, Any], event_id: str | None = None) -> tuple[int, str]:
        self._event_ids += 1
        event_id = event_id or f"Ev{self._event_ids:04d}"
        authorization = {
            "team_id": TEAM_ID,
            "user_id": "UBOT",
            "is_bot": True,
            "is_enterprise_install": False,
        }
        envelope = {
            "token": "legacy",
            "team_id": TEAM_ID,
            "api_app_id": "A0001",
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [authorization],
        }
        return await self.post(json.dumps(envelope), "application/json")

    async def react(
        self,
        user: str,
        reaction: str,
        ts: str,
        channel: str = "C1",
        removed: bool = False,
        event_id: str | None = None,
    ) -> tuple[int, str]:
        return await self.event(
            event_id=event_id,
            event={
                "type": "reaction_removed" if removed else "reaction_added",
                "user": user,
                "reaction": reaction,
                "item_user": "UBOT",
                "item": {"type": "message", "channel": channel, "ts": ts},
                "event_ts": f"{time.time():.6f}",
            },
        )


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(words=WORDS, delay_s=0.02)


@pytest.fixture
def admin_services() -> AdminServices | None:
    """The admin services the app is opened with: scripted, holding one active version and
    its rating stats (a test adds the answers it needs). A test parametrized with
    `admin_services=None` gets the real services."""
    return scripted_admin(
        {
            "registry.versions": [version_record("fake-1", "active", metrics={"eval_loss": 3.5})],
            "reports.stats": [VersionRatingStats("fake-1", 10, 4, 0.5, 0.75, 3)],
        }
    )


@pytest.fixture
def scripted(admin_services: AdminServices | None) -> ScriptedAdmin:
    """The scripted admin services, for tests that add answers or read their call log."""
    assert isinstance(admin_services, ScriptedAdmin)
    return admin_services


@pytest.fixture
def slack_config(fake_slack: FakeSlack) -> SlackConfig:
    return SlackConfig(
        bot_token="xoxb-test", signing_secret=SECRET, api_url=f"{fake_slack.url}/api/"
    )


@pytest.fixture
async def app(
    tmp_path: Any, backend: ScriptedBackend, admin_services: AdminServices | None
) -> AsyncIterator[App]:
    settings = Settings(
        storage=StorageConfig(url=f"sqlite:///{tmp_path}/bot.db"),
        admin=AdminConfig(user_ids=(ADMIN,)),
        chat=ChatConfig(cooldown_s=0.0),  # the cooldown has its own test
    )
    app = await App.open(settings, backend=backend, admin=admin_services)
    yield app
    await app.close()


@pytest.fixture
async def platform(app: App, slack_config: SlackConfig) -> AsyncIterator[SlackPlatform]:
    options = RunOptions(host="127.0.0.1", port=0)
    platform = SlackPlatform(app, options, slack_config, EDIT_INTERVAL_S)
    await platform.start()
    yield platform
    await platform.close()


@pytest.fixture
async def slack(platform: SlackPlatform, fake_slack: FakeSlack) -> AsyncIterator[SignedClient]:
    async with aiohttp.ClientSession() as session:
        yield SignedClient(f"http://127.0.0.1:{platform.port}", fake_slack, session)
