"""The operator's HTTP endpoints: `/healthz`, `/readyz`, `/metrics` (`bot/health.py` says what
they mean, `bot/metrics.py` what `/metrics` holds).

- `health_routes(target)`: the three routes, which the web platform and Slack's HTTP mode add
  to their own server.
- `HealthServer`: a server of its own on `HEALTH_PORT`, for any platform. `gpt2bot run` starts
  it before the database is migrated and the model prepared, so during a first start that
  trains the bootstrap model a supervisor sees the process alive but not ready.
- `PreparingPage`: the address of a platform that serves HTTP (`@serves_http`: the web
  playground) answers "preparing the model" (with the bootstrap progress) until the platform
  itself starts there.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.health import HealthConfig, Readiness, not_ready, readiness
from bot.settings import SettingsError

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

STARTING = "starting: migrating the database and preparing the model"
STOPPING = "stopping"
PREPARING_RETRY_S = 5  # the preparing page reloads itself this often


class HealthTarget:
    """What the endpoints report on: nothing yet while starting, then the app and platform."""

    def __init__(self, app: App | None = None, platform: object | None = None) -> None:
        self.app, self.platform = app, platform
        self.reason = STARTING

    def attach(self, app: App, platform: object | None = None) -> None:
        self.app, self.platform = app, platform

    def detach(self, reason: str = STOPPING) -> None:
        self.app, self.platform, self.reason = None, None, reason

    async def readiness(self) -> Readiness:
        if self.app is None:
            return not_ready(self.reason)
        return await readiness(self.app, self.platform)


def health_routes(target: HealthTarget) -> list[web.RouteDef]:
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        state = await target.readiness()
        return web.json_response(state.as_dict(), status=200 if state.ready else 503)

    async def metrics(request: web.Request) -> web.Response:
        if target.app is None:
            return web.Response(text=f"{target.reason}\n", status=503)
        body = await asyncio.to_thread(target.app.metrics.exposition)  # reads the database
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)]


HEALTH_FIX = "Stop what uses it, or choose another port with HEALTH_PORT (and HEALTH_HOST)."
WEB_PORT_FIX = "Stop what uses it, or choose another port with --port (and --host)."


def cannot_listen(variable: str, host: str, port: int, error: OSError, fix: str) -> SettingsError:
    """An address that cannot be listened on (in use, not this machine's, a privileged port)
    is an operator's mistake: one line naming the setting or option."""
    reason = os.strerror(error.errno) if error.errno else str(error)
    return SettingsError(variable, f"cannot listen on {host}:{port} ({reason})", fix)


class _Listener:
    """One aiohttp application on one address, started and stopped by its owner."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.requested_port = host, port
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int | None:
        if self._runner is None or not self._runner.addresses:
            return None
        return int(self._runner.addresses[0][1])

    async def _listen(self, application: web.Application, variable: str, fix: str) -> None:
        self._runner = web.AppRunner(application, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.requested_port).start()
        except OSError as error:
            await self.close()
            raise cannot_listen(variable, self.host, self.requested_port, error, fix) from None

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class HealthServer(_Listener):
    """`HEALTH_PORT`: the three endpoints on their own port. Serves nothing when unset."""

    def __init__(self, config: HealthConfig, target: HealthTarget) -> None:
        super().__init__(config.host, config.port or 0)
        self.enabled = config.port is not None
        self.target = target

    async def start(self) -> None:
        if not self.enabled:
            return
        application = web.Application()
        application.add_routes(health_routes(self.target))
        await self._listen(application, "HEALTH_PORT", HEALTH_FIX)
        log.info("health: http://%s:%s/healthz, /readyz, /metrics", self.host, self.port)


class PreparingPage(_Listener):
    """Answers on the platform's address while the model is prepared: 503 and a page that
    reloads itself (with the bootstrap training's progress), `/healthz` 200, `/readyz` 503."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.status = "migrating the database and preparing the model"

    def progress(self, step: int, total: int, loss: float) -> None:
        """A `ProgressFn` for the bootstrap training (called from a worker thread)."""
        self.status = f"training the offline bootstrap model: step {step} of {total}"

    async def start(self) -> None:
        application = web.Application()
        application.add_routes(health_routes(HealthTarget()))
        application.router.add_route("*", "/{tail:.*}", self._preparing)
        await self._listen(application, "--port", WEB_PORT_FIX)

    async def _preparing(self, request: web.Request) -> web.Response:
        headers = {"Retry-After": str(PREPARING_RETRY_S), "Cache-Control": "no-store"}
        message = f"gpt2bot is starting: {self.status}. Retry in a few seconds."
        if request.method != "GET" or request.path.startswith(("/api/", "/admin/api/")):
            body = json.dumps({"error": message})
            return web.Response(
                text=body, status=503, headers=headers, content_type="application/json"
            )
        page = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            f'<meta http-equiv="refresh" content="{PREPARING_RETRY_S}">'
            "<title>gpt2bot is starting</title></head><body><h1>gpt2bot is starting</h1>"
            f"<p>{html.escape(self.status[0].upper() + self.status[1:])}…</p>"
            "<p>This page reloads by itself; the playground opens when the model is ready.</p>"
            "</body></html>"
        )
        return web.Response(text=page, status=503, headers=headers, content_type="text/html")
