"""The admin dashboard's endpoints: login, generations browser and export, ratings per model
version, model versions, the processes serving them (the fleet), training runs and curation.

Reads go straight to read-only repositories; every change (and every login and export) goes
through `AdminGate.authorize`, which audits it, then through the admin services that
chat admins use too (`app.admin`: curation, training, registry, reports).
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from admin.auth import Actor, AdminGate, NotAuthorized
from admin.base import AdminServices
from admin.errors import AdminError, AlreadyRunning, PromotionRefused, ReviewUnavailable, Unknown
from bot.export import FORMATS, write_export
from bot.params import InvalidRequest
from bot.platforms.web.playground import error_response, generation_json, read_json
from bot.platforms.web.security import (
    ADMIN_COOKIE,
    ADMIN_SESSION_S,
    GUARD_KEY,
    Guard,
    address_of,
    client_id_of,
)
from storage import Database, GenerationRepository, TrainingRunRecord
from storage.browse import RATING_FILTERS, GenerationBrowser, GenerationFilter

log = logging.getLogger(__name__)

PAGE_SIZE = 50
# after a refusal an admin may override (the promotion gate): how to, on the dashboard
HOW_TO_FORCE = "To promote it anyway, tick Force and press its Use button again."
# what kind of refusal, as an HTTP status; any other `AdminError` is a bad request (400)
REFUSAL_STATUS: tuple[tuple[type[AdminError], int], ...] = (
    (Unknown, 404),
    (PromotionRefused, 409),
    (AlreadyRunning, 409),
    (ReviewUnavailable, 409),
)
MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # curation files: plain text, a few MB at most


@dataclass
class DashboardContext:
    db: Database
    guard: Guard
    gate: AdminGate
    admin: AdminServices
    browser: GenerationBrowser
    generations: GenerationRepository


def refusal(error: AdminError) -> web.Response:
    """An admin use-case's refusal as the dashboard shows it: a 4xx JSON answer with the
    sentence (and how to force it, where the admin may)."""
    status = next((code for kind, code in REFUSAL_STATUS if isinstance(error, kind)), 400)
    return error_response(error.sentence(HOW_TO_FORCE), status)


def _actor(request: web.Request) -> Actor:
    return Actor(platform="web", user_id=f"web-admin-{client_id_of(request)[:12]}", owner=True)


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be a date like 2026-01-31; got {value!r}.") from None


def parse_filter(query: Any) -> GenerationFilter:
    """The browser's filters from query parameters; `until` includes that whole day."""
    rating = query.get("rating") or "any"
    if rating not in RATING_FILTERS:
        raise InvalidRequest(f"rating must be one of {', '.join(RATING_FILTERS)}.")
    since, until = _day(query.get("since"), "since"), _day(query.get("until"), "until")
    return GenerationFilter(
        model_version=query.get("model_version") or None,
        rating=rating,
        since=datetime(since.year, since.month, since.day, tzinfo=UTC) if since else None,
        until=(
            datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1)
            if until
            else None
        ),
        text=(query.get("q") or "").strip() or None,
        platform=query.get("platform") or None,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _record_json(record: Any) -> dict[str, Any]:
    return dict(_jsonable(asdict(record)))


def _run_json(run: TrainingRunRecord) -> dict[str, Any]:
    """A run for the live panel: its state, not the texts it trains on."""
    fields = {k: v for k, v in asdict(run).items() if k != "dataset_snapshot"}
    return {**_jsonable(fields), "promoted": run.promoted}


async def download(
    ctx: DashboardContext, write: Callable[[io.StringIO], None], fmt: str, stem: str
) -> web.Response:
    """An export as a file download: `write` runs off the event loop (it reads the database)."""

    def build() -> str:
        out = io.StringIO()
        write(out)
        return out.getvalue()

    body = await ctx.db.run(build)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return web.Response(
        text=body,
        content_type="application/x-ndjson" if fmt == "jsonl" else "text/csv",
        headers={"Content-Disposition": f'attachment; filename="{stem}-{stamp}.{fmt}"'},
    )


@web.middleware
async def require_admin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admin API calls need a session; the page and the login itself do not."""
    path = request.path
    guard = request.app[GUARD_KEY]
    if (
        path.startswith("/admin/api/")
        and path != "/admin/api/login"
        and not guard.is_admin(request)
    ):
        return error_response("Log in with the admin token first.", 401)
    return await handler(request)


class DashboardApi:
    """Request handlers over a `DashboardContext`; `routes()` maps them to URLs."""

    def __init__(self, ctx: DashboardContext) -> None:
        self.ctx = ctx

    async def login(self, request: web.Request) -> web.Response:
        try:
            token = str((await read_json(request)).get("token") or "")
        except InvalidRequest as error:
            return error_response(str(error))
        guard, address = self.ctx.guard, address_of(request)
        locked = guard.login_locked(address)
        actor = Actor(
            platform="web",
            user_id=f"web-admin-{client_id_of(request)[:12]}",
            owner=locked is None and bool(token) and guard.token_ok(token),
        )
        try:
            await self.ctx.gate.authorize(actor, "web.login", {"address": address})
        except NotAuthorized:
            if locked is None:  # a wrong token: it counts against the address
                guard.wrong_logins.hit(address)
                locked = guard.login_locked(address)
                if locked is not None:  # this wrong token used up the address's tries
                    log.warning("admin logins from %s locked after wrong tokens", address)
                    await self.ctx.db.run(
                        self.ctx.gate.audit.record,
                        actor.user_id,
                        "web",
                        "web.login.locked",
                        False,
                        {"address": address, "seconds": round(locked)},
                    )
            if locked is not None:
                seconds = math.ceil(locked)
                return web.json_response(
                    {
                        "error": f"Too many wrong admin tokens: logins from your address are "
                        f"locked for {seconds} s."
                    },
                    status=429,
                    headers={"Retry-After": str(seconds)},
                )
            return error_response(
                "That admin token is not right. It was printed at first start and is kept in "
                "the admin token file (or set ADMIN_TOKEN).",
                403,
            )
        response = web.json_response({"ok": True})
        self.ctx.guard.set_cookie(
            response, ADMIN_COOKIE, self.ctx.guard.open_session(), ADMIN_SESSION_S
        )
        return response

    async def logout(self, request: web.Request) -> web.Response:
        self.ctx.guard.close_session(request.cookies.get(ADMIN_COOKIE))
        response = web.json_response({"ok": True})
        response.del_cookie(ADMIN_COOKIE, path="/")
        return response

    async def generations(self, request: web.Request) -> web.Response:
        try:
            flt = parse_filter(request.query)
            before = request.query.get("before_id")
            before_id = int(before) if before else None
        except (InvalidRequest, ValueError) as error:
            return error_response(
                str(error)
                if isinstance(error, InvalidRequest)
                else "before_id must be a generation number."
            )
        records = await self.ctx.db.run(self.ctx.browser.search, flt, PAGE_SIZE, before_id)
        rows = [
            {
                **generation_json(r),
                "platform": r.platform,
                "user_id": r.user_id,
                "latency_s": round(r.latency_s, 3),
                "completion_tokens": r.completion_tokens,
            }
            for r in records
        ]
        return web.json_response(
            {
                "generations": rows,
                "more": len(records) == PAGE_SIZE,
                "model_versions": await self.ctx.db.run(self.ctx.browser.model_versions),
            }
        )

    async def export(self, request: web.Request) -> web.Response:
        fmt = request.query.get("format", "jsonl")
        try:
            if fmt not in FORMATS:
                raise InvalidRequest(f"format must be {' or '.join(FORMATS)}.")
            flt = parse_filter(request.query)
        except InvalidRequest as error:
            return error_response(str(error))
        await self.ctx.gate.authorize(_actor(request), "web.export", {"format": fmt})

        def build(out: io.StringIO) -> None:
            write_export(self.ctx.browser.iter(flt), out, fmt)

        return await download(self.ctx, build, fmt, "gpt2bot")

    async def stats(self, request: web.Request) -> web.Response:
        rows = await self.ctx.db.run(self.ctx.generations.stats_by_version)
        return web.json_response({"stats": [asdict(r) for r in rows]})

    async def models(self, request: web.Request) -> web.Response:
        rows = await self.ctx.admin.registry.versions()
        return web.json_response({"models": [_record_json(r) for r in rows]})

    async def lines(self, request: web.Request) -> web.Response:
        """Every server's own model line: enabled, what it is served, its versions."""
        lines = await self.ctx.admin.lines.every()
        return web.json_response({"lines": [_jsonable(line.to_dict()) for line in lines]})

    async def fleet(self, request: web.Request) -> web.Response:
        """The database's choice and every live `gpt2bot run` process (admin/fleet.py)."""
        view = await self.ctx.admin.fleet.view()
        return web.json_response(view.to_dict())

    async def training(self, request: web.Request) -> web.Response:
        runs = await self.ctx.db.run(self.ctx.browser.training_runs)
        current = await self.ctx.admin.training.status()
        return web.json_response(
            {
                "current": _run_json(current) if current else None,
                "runs": [_record_json(r) for r in runs],
            }
        )

    async def curation(self, request: web.Request) -> web.Response:
        items = await self.ctx.admin.curation.recent(limit=100)
        return web.json_response({"items": [_record_json(i) for i in items]})

    async def servers(self, request: web.Request) -> web.Response:
        rows = await self.ctx.db.run(self.ctx.gate.servers.known)
        return web.json_response({"servers": [_record_json(r) for r in rows]})

    async def audit(self, request: web.Request) -> web.Response:
        rows = await self.ctx.db.run(self.ctx.gate.audit.recent, 30)
        return web.json_response({"entries": [_jsonable(r) for r in rows]})

    def routes(self) -> list[web.RouteDef]:
        """Login and read-only views; the admin actions are in `action_routes`."""
        return [
            web.post("/admin/api/login", self.login),
            web.post("/admin/api/logout", self.logout),
            web.get("/admin/api/generations", self.generations),
            web.get("/admin/api/export", self.export),
            web.get("/admin/api/stats", self.stats),
            web.get("/admin/api/models", self.models),
            web.get("/admin/api/lines", self.lines),
            web.get("/admin/api/fleet", self.fleet),
            web.get("/admin/api/training", self.training),
            web.get("/admin/api/curation", self.curation),
            web.get("/admin/api/audit", self.audit),
            web.get("/admin/api/servers", self.servers),
        ]
