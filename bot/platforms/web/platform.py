"""`WebPlatform`: serves the playground and the dashboard on aiohttp until stopped."""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler

from admin.errors import AdminError
from bot.logs import announce, logs_json
from bot.platforms.base import RunOptions, serves_http, uses_config
from bot.platforms.health import WEB_PORT_FIX, HealthTarget, cannot_listen, health_routes
from bot.platforms.web.ab import ABApi
from bot.platforms.web.actions import action_routes
from bot.platforms.web.config import WebConfig
from bot.platforms.web.dashboard import DashboardApi, DashboardContext, refusal, require_admin
from bot.platforms.web.members import MemberApi
from bot.platforms.web.playground import PlaygroundApi, PlaygroundContext, error_response
from bot.platforms.web.review import ReviewApi
from bot.platforms.web.security import GUARD_KEY, Guard, load_admin_token, make_middleware
from storage import GenerationRepository
from storage.browse import GenerationBrowser

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_REQUEST_BYTES = 6 * 1024 * 1024  # curation uploads (5 MB) plus form overhead
SHUTDOWN_GRACE_S = 5.0  # in-flight streams get this long to finish on stop


@web.middleware
async def catch_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An admin use-case's refusal is answered here, the one place (`dashboard.refusal`);
    unexpected errors become a sentence with an incident id; the log has the traceback."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except AdminError as error:  # a refusal written for the admin who asked: 4xx, not 500
        return refusal(error)
    except Exception:
        incident = uuid.uuid4().hex[:8]
        log.exception(
            "web request %s %s failed (incident %s)", request.method, request.path, incident
        )
        return error_response(f"Something went wrong (incident {incident}); please try again.", 500)


def _page(name: str) -> Handler:
    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-cache"})

    return page


def build_web_app(app: App, guard: Guard) -> web.Application:
    """The aiohttp application over `app`'s use-cases (also what the tests drive)."""
    web_app = web.Application(
        middlewares=[catch_errors, make_middleware(guard), require_admin],
        client_max_size=MAX_REQUEST_BYTES,
    )
    web_app[GUARD_KEY] = guard
    browser = GenerationBrowser(app.db)
    playground = PlaygroundContext(chat=app.chat, db=app.db, browser=browser, guard=guard)
    dashboard = DashboardContext(
        db=app.db,
        guard=guard,
        gate=app.gate,
        admin=app.admin,
        browser=browser,
        generations=GenerationRepository(app.db),
    )
    web_app.add_routes(
        [
            web.get("/", _page("playground.html")),
            web.get("/admin", _page("dashboard.html")),
            web.get("/admin/review", _page("review.html")),
            *PlaygroundApi(playground).routes(),
            *MemberApi(app.chat, app.mydata).routes(),
            *DashboardApi(dashboard).routes(),
            *action_routes(dashboard),
            *ReviewApi(dashboard).routes(),
            *ABApi(dashboard).routes(),
            *health_routes(HealthTarget(app)),  # /healthz, /readyz, /metrics
        ]
    )
    web_app.router.add_static("/static/", STATIC_DIR)
    return web_app


class WebPlatform:
    """Serves the web app until `stop()`."""

    name = "web"

    def __init__(self, app: App, options: RunOptions, guard: Guard) -> None:
        self._app = app
        self._options = options
        self._guard = guard
        self._stopped = asyncio.Event()
        self.runner: web.AppRunner | None = None

    async def start(self) -> str:
        """Bind and start serving; returns the base URL."""
        debug = self._app.settings.log_level == "DEBUG"  # one access-log line per request
        self.runner = web.AppRunner(
            build_web_app(self._app, self._guard),
            shutdown_timeout=SHUTDOWN_GRACE_S,
            access_log=logging.getLogger("aiohttp.access") if debug else None,
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, self._options.host, self._options.port)
        await site.start()
        port = self.runner.addresses[0][1] if self.runner.addresses else self._options.port
        host = self._options.host
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    async def run(self) -> None:
        try:
            url = await self.start()
        except OSError as error:
            host, port = self._options.host, self._options.port
            raise cannot_listen("--port", host, port, error, WEB_PORT_FIX) from None
        announce(f"gpt2bot playground: {url}/   dashboard: {url}/admin   (Ctrl+C stops)", log)
        try:
            await self._stopped.wait()
        finally:
            if self.runner is not None:
                await self.runner.cleanup()

    async def stop(self) -> None:
        self._stopped.set()


@serves_http
@uses_config(WebConfig)
def create(app: App, options: RunOptions, config: WebConfig) -> WebPlatform:
    """The `gpt2bot.platforms` entry point: warns when listening beyond this machine."""
    if options.host not in LOCAL_HOSTS:
        message = (
            f"WARNING: the web playground listens on {options.host}, reachable from other "
            "machines. Anyone who can reach it can generate; keep the admin token secret and put "
            "HTTPS (a reverse proxy) in front of it."
        )
        log.warning(message)
        if not logs_json():  # and a banner a person at the terminal cannot miss
            print(message, file=sys.stderr, flush=True)
    guard = Guard(
        admin_token=load_admin_token(config),
        new_clients_per_hour=config.new_clients_per_hour,
        login_attempts=config.login_attempts,
    )
    return WebPlatform(app, options, guard)
