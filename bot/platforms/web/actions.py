"""The dashboard's admin actions: model use/rollback, retrain now/schedule/cancel, curation,
A/B experiments start/stop.

Each handler is thin: parse the form, `AdminGate.authorize` (which audits), call the
admin service (`app.admin`), render the result. A use-case's refusal (`AdminError`) is
answered by the platform's `catch_errors` middleware, the one place, as a 4xx sentence.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from admin.auth import NotAuthorized
from admin.base import AdminServices
from bot.params import InvalidRequest
from bot.platforms import fleet_text
from bot.platforms.web.ab import ab_start, ab_stop
from bot.platforms.web.dashboard import (
    MAX_UPLOAD_BYTES,
    DashboardContext,
    _actor,
    _record_json,
    _run_json,
)
from bot.platforms.web.playground import error_response, read_json
from storage import ModelVersionRecord

log = logging.getLogger(__name__)

Action = Callable[[AdminServices, str, dict[str, Any]], Awaitable[Any]]


async def _model_use(admin: AdminServices, actor: str, body: dict[str, Any]) -> Any:
    version = str(body.get("version") or "").strip()
    if not version:
        raise InvalidRequest("Choose the model version to use.")
    record = await admin.registry.use(actor, version, force=bool(body.get("force")))
    return await _switched(admin, record, "")


async def _model_rollback(admin: AdminServices, actor: str, body: dict[str, Any]) -> Any:
    record = await admin.registry.rollback(actor)
    return await _switched(admin, record, "Rolled back. ")


async def _switched(admin: AdminServices, record: ModelVersionRecord, intro: str) -> Any:
    """What the database now says, and how the live processes follow it."""
    view = await admin.fleet.view()
    message = intro + fleet_text.switched(record.name, view)
    return {"message": message, "model": _record_json(record), "fleet": view.to_dict()}


async def _retrain_now(admin: AdminServices, actor: str, body: dict[str, Any]) -> Any:
    info = await admin.training.start(actor)
    return {"message": f"Training run #{info.id} started.", "run": _run_json(info)}


async def _retrain_cancel(admin: AdminServices, actor: str, body: dict[str, Any]) -> Any:
    cancelled = await admin.training.cancel(actor)
    return {"message": "Training cancelled." if cancelled else "No training run is in progress."}


async def _retrain_schedule(admin: AdminServices, actor: str, body: dict[str, Any]) -> Any:
    cron = str(body.get("cron") or "").strip() or None
    upcoming = await admin.training.schedule(actor, cron)
    if cron is None:
        return {"message": "Scheduled retraining is off.", "next": []}
    times = [t.isoformat() for t in upcoming]
    return {"message": f"Retraining scheduled ({cron}); next: {', '.join(times)}.", "next": times}


async def _curate_add(admin: AdminServices, actor: str, body: dict[str, Any]) -> Any:
    text = str(body.get("text") or "")
    if not text.strip():
        raise InvalidRequest("Write the text to add.")
    report = await admin.curation.add(actor, [text])
    return {"message": report.summary().capitalize() + "."}


async def _curate_remove(admin: AdminServices, actor: str, body: dict[str, Any]) -> Any:
    try:
        sample_id = int(str(body.get("id")))
    except (TypeError, ValueError):
        raise InvalidRequest("That is not a sample number.") from None
    await admin.curation.remove(actor, sample_id)
    return {"message": f"Sample #{sample_id} removed from the training data."}


def _optional_number(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value in (None, ""):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{name.replace('_', ' ')} must be a number.") from None


async def _server_set(admin: AdminServices, actor: str, body: dict[str, Any]) -> Any:
    platform, server_id = str(body.get("platform") or ""), str(body.get("server_id") or "")
    if not platform or not server_id:
        raise InvalidRequest("Choose the server to change.")
    channels = [c for c in str(body.get("allowed_channels") or "").replace(",", " ").split()]
    changes: dict[str, Any] = {}
    if "template" in body:  # the whole server's; channels' templates are set in the chat
        current = await admin.servers.get(platform, server_id)
        changes["templates"] = {**current.templates, "": str(body["template"] or "") or None}
    record = await admin.servers.update(
        actor,
        platform,
        server_id,
        allowed_channels=channels,
        cooldown_s=_optional_number(body, "cooldown_s", float),
        max_new_tokens_cap=_optional_number(body, "max_new_tokens_cap", int),
        samples_cap=_optional_number(body, "samples_cap", int),
        ratings_train=bool(body.get("ratings_train", True)),
        **changes,
    )
    return {
        "message": f"Saved the settings of {platform} server {server_id}.",
        "server": _record_json(record),
    }


ACTIONS: dict[str, tuple[str, Action]] = {
    # url path: (audited action name, use-case)
    "models/use": ("model.use", _model_use),
    "models/rollback": ("model.rollback", _model_rollback),
    "training/start": ("retrain.now", _retrain_now),
    "training/cancel": ("retrain.cancel", _retrain_cancel),
    "training/schedule": ("retrain.schedule", _retrain_schedule),
    "curation/add": ("curate.add", _curate_add),
    "curation/remove": ("curate.remove", _curate_remove),
    "servers/update": ("server.set", _server_set),
    "ab/start": ("ab.start", ab_start),
    "ab/stop": ("ab.stop", ab_stop),
}


def action_routes(ctx: DashboardContext) -> list[web.RouteDef]:
    def handler(action: str, use_case: Action) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            actor = _actor(request)
            try:
                body = await read_json(request, MAX_UPLOAD_BYTES)
                await ctx.gate.authorize(actor, action, {k: str(v)[:200] for k, v in body.items()})
                return web.json_response(await use_case(ctx.admin, actor.user_id, body))
            except NotAuthorized as refusal:
                return error_response(str(refusal), 403)
            except InvalidRequest as error:  # the form; the use-case's refusals: catch_errors
                return error_response(str(error))

        return handle

    async def upload(request: web.Request) -> web.Response:
        if request.content_length and request.content_length > MAX_UPLOAD_BYTES:
            return error_response("The file is too big: the limit is 5 MB.")
        actor = _actor(request)
        try:
            form = await request.post()
            field = form.get("file")
            if not isinstance(field, web.FileField):
                raise InvalidRequest("Choose a .txt or .jsonl file to upload.")
            content = field.file.read(MAX_UPLOAD_BYTES + 1)
            if len(content) > MAX_UPLOAD_BYTES:
                raise InvalidRequest("The file is too big: the limit is 5 MB.")
            await ctx.gate.authorize(actor, "curate.add_file", {"filename": field.filename})
            report = await ctx.admin.curation.add_file(actor.user_id, field.filename, content)
        except NotAuthorized as refusal:
            return error_response(str(refusal), 403)
        except InvalidRequest as error:
            return error_response(str(error))
        return web.json_response({"message": f"{field.filename}: {report.summary()}."})

    routes = [web.post(f"/admin/api/{path}", handler(*spec)) for path, spec in ACTIONS.items()]
    routes.append(web.post("/admin/api/curation/upload", upload))
    return routes
