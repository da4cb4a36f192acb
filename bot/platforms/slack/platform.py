"""The `slack` platform: slack-bolt's `AsyncApp` in Socket Mode or behind an aiohttp server.

With `SLACK_APP_TOKEN` set, the bot connects out to Slack over Socket Mode (no public URL
needed). Otherwise it serves Slack's HTTP requests at `/slack/events` on `--host`/`--port`,
and slack-bolt verifies each request's signature with `SLACK_SIGNING_SECRET`: a bad signature
or a timestamp more than five minutes old gets 401 and nothing runs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.platforms.base import RunOptions, uses_config
from bot.platforms.health import HealthTarget, health_routes
from bot.platforms.slack.admin import COMMAND as ADMIN_COMMAND
from bot.platforms.slack.admin import SlackAdmin
from bot.platforms.slack.chat import SlackChat
from bot.platforms.slack.config import SlackConfig
from bot.platforms.slack.members import COMMAND as MYDATA_COMMAND
from bot.platforms.slack.members import SlackMyData
from bot.platforms.slack.stream import EDIT_INTERVAL_S
from bot.platforms.slack.talk import SlackTalk
from bot.settings import check_config
from bot.story import StoryThreads

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
DEFAULT_API_URL = "https://slack.com/api/"
GENERATE_COMMAND = "/generate"
RATE_LIMIT_RETRIES = 3  # each waits Slack's Retry-After (plus up to 1 s of jitter)


@uses_config(SlackConfig)
def create(app: App, options: RunOptions, config: SlackConfig) -> SlackPlatform:
    """The `gpt2bot.platforms` entry point."""
    return SlackPlatform(app, options, config)


def web_client(config: SlackConfig) -> AsyncWebClient:
    """The Web API client: `SLACK_API_URL` as base URL, 429s retried after `Retry-After`."""
    base_url = config.api_url or DEFAULT_API_URL
    return AsyncWebClient(
        token=config.bot_token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ],
    )


class SlackPlatform:
    """Serves `/generate`, `/gpt2bot-admin`, reactions, mentions and story threads for one
    Slack workspace."""

    name = "slack"

    def __init__(
        self,
        app: App,
        options: RunOptions,
        config: SlackConfig,
        edit_interval_s: float = EDIT_INTERVAL_S,
    ) -> None:
        check_config(config)  # `gpt2bot run` checked it already; direct callers too
        self._options = options
        self._config = config
        self.client = web_client(config)
        self.bolt = AsyncApp(
            name="gpt2bot",
            client=self.client,
            signing_secret=config.signing_secret or "",
            # Socket Mode messages arrive over an authenticated websocket, unsigned.
            request_verification_enabled=not config.app_token,
        )
        self.chat = SlackChat(app.chat, edit_interval_s)
        self.admin = SlackAdmin(app)
        self._app = app
        self.bolt.command(GENERATE_COMMAND)(self.chat.generate)
        self.bolt.command(ADMIN_COMMAND)(self.admin.command)
        self.bolt.command(MYDATA_COMMAND)(SlackMyData(app.mydata).command)
        self.bolt.event("reaction_added")(self.chat.reaction_added)
        self.bolt.event("reaction_removed")(self.chat.reaction_removed)
        stories = StoryThreads(app.chat, app.db, app.settings.chat)
        self.talk = SlackTalk(app.chat, self.chat, stories)
        self.bolt.event("app_mention")(self.talk.app_mention)
        self.bolt.event("message")(self.talk.message)
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._stopped = asyncio.Event()

    @property
    def socket_mode(self) -> bool:
        return bool(self._config.app_token)

    @property
    def port(self) -> int | None:
        """The bound HTTP port (useful with `--port 0`); None in Socket Mode or before start."""
        if self._runner is None:
            return None
        for address in self._runner.addresses:
            return int(address[1])
        return None

    def web_app(self) -> web.Application:
        """The aiohttp application that hands `/slack/events` to bolt."""
        application = web.Application()

        async def events(request: web.Request) -> web.Response:
            response = await self.bolt.async_dispatch(await to_bolt_request(request))
            return await to_aiohttp_response(response)

        application.router.add_post(EVENTS_PATH, events)
        application.add_routes(health_routes(HealthTarget(self._app, self)))
        return application

    async def connected(self) -> bool:
        """Socket Mode: the websocket is up; HTTP mode: the events endpoint listens."""
        if self._socket is not None:
            return bool(await self._socket.client.is_connected())
        return self._runner is not None

    async def start(self) -> None:
        """Connect (Socket Mode) or start listening (HTTP); returns once ready."""
        if self.socket_mode:
            self._socket = AsyncSocketModeHandler(self.bolt, self._config.app_token)
            await self._socket.connect_async()
            log.info("slack: connected in Socket Mode")
            return
        self._runner = web.AppRunner(self.web_app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._options.host, self._options.port).start()
        log.info("slack: serving %s on http://%s:%s", EVENTS_PATH, self._options.host, self.port)

    async def run(self) -> None:
        await self.start()
        try:
            await self._stopped.wait()
        finally:
            await self.close()

    async def stop(self) -> None:
        self._stopped.set()

    async def close(self) -> None:
        """Stop serving and tell the readers of unfinished answers."""
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.chat.stop()
