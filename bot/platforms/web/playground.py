"""The playground: generate with streaming, rate, regenerate, continue, and this browser's history.

Generation endpoints answer with Server-Sent Events: `queued` {position}, `chunk` {sample,
text}, then `done` {generations: [...]} or `error` {error}. Bad input is refused before the
stream starts (400 with a sentence), a full queue with 429 and `Retry-After`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

from bot.chat import ChatService, GenerateEvent, Origin
from bot.params import DEFAULTS, LIMITS, InvalidRequest
from bot.platforms.web.security import Guard, client_id_of
from model.backends.base import BackendError, Busy, Chunk, Queued
from storage import Database, GenerationBrowser, GenerationFilter, GenerationRecord

log = logging.getLogger(__name__)

PLATFORM = "web"
HISTORY_LIMIT = 50  # generations shown in "your history"
MAX_JSON_BYTES = 16 * 1024  # prompts are at most 2000 characters
RATING_BUTTONS = ("👍", "👎")


@dataclass
class PlaygroundContext:
    chat: ChatService
    db: Database
    browser: GenerationBrowser
    guard: Guard


def generation_json(record: GenerationRecord, viewer: str | None = None) -> dict[str, Any]:
    """What the page needs of a generation; `my_rating` is the viewer's emoji, if any."""
    mine = next((r.emoji for r in record.ratings if r.rater_id == viewer), None)
    return {
        "id": record.id,
        "conversation_id": record.conversation_id,
        "parent_id": record.parent_id,
        "kind": record.kind,
        "prompt": record.prompt,
        "output": record.output,
        "params": record.params,
        "seed": str(record.seed),  # 63-bit: too big for a JavaScript number
        "model_version": record.model_version,
        "prompt_truncated": record.prompt_truncated,
        "created_at": record.created_at.isoformat(),
        "ratings_up": sum(1 for r in record.ratings if r.score > 0),
        "ratings_down": sum(1 for r in record.ratings if r.score < 0),
        "my_rating": mine,
        "flagged": record.flagged,  # why moderation withheld it (the dashboard shows admins)
        "hidden": record.hidden,
    }


def error_response(message: str, status: int = 400, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


async def read_json(request: web.Request, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > limit:
        raise InvalidRequest("The request is too large.")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidRequest("The request is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request must be a JSON object.")
    return body


def _generation_id(request: web.Request) -> int:
    try:
        return int(request.match_info["generation_id"])
    except ValueError:
        raise InvalidRequest("That is not a generation number.") from None


async def _own_generation(ctx: PlaygroundContext, request: web.Request) -> int:
    """The id in the URL, if it is one of this browser's generations (others' stay private)."""
    gid = _generation_id(request)
    record = await ctx.chat.get(gid)
    if record.platform != PLATFORM or record.user_id != client_id_of(request):
        raise InvalidRequest(f"There is no generation #{gid}.")
    return gid


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _event_payload(event: GenerateEvent, viewer: str) -> tuple[str, dict[str, Any]]:
    if isinstance(event, Queued):
        return "queued", {"position": event.position}
    if isinstance(event, Chunk):
        return "chunk", {"sample": event.sample, "text": event.text}
    return "done", {
        "generations": [generation_json(g, viewer) for g in event.generations],
        "prompt_truncated": event.result.prompt_truncated,
    }


async def stream_events(
    request: web.Request, start: Callable[[], AsyncIterator[GenerateEvent]]
) -> web.StreamResponse:
    """Refuse bad requests with a status code, then stream the rest as Server-Sent Events."""
    viewer = client_id_of(request)
    events = start()
    # closing the generator cancels the work when the browser leaves or the server stops
    async with contextlib.aclosing(cast(AsyncGenerator[GenerateEvent, None], events)):
        try:
            first = await anext(events)
        except InvalidRequest as error:
            return error_response(str(error))
        except Busy as error:
            retry = max(1, round(error.retry_after_s))
            return error_response(str(error), 429, **{"Retry-After": str(retry)})
        except BackendError as error:
            return error_response(str(error), 503)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            await response.write(_sse(*_event_payload(first, viewer)))
            async for event in events:
                await response.write(_sse(*_event_payload(event, viewer)))
        except (ConnectionResetError, ConnectionError):
            log.info("browser left during a generation; cancelling it")
            return response
        except (BackendError, InvalidRequest) as error:
            await response.write(_sse("error", {"error": str(error)}))
        except Exception:
            incident = uuid.uuid4().hex[:8]
            log.exception("generation failed (incident %s)", incident)
            message = f"Something went wrong (incident {incident}); please try again."
            await response.write(_sse("error", {"error": message}))
        await response.write_eof()
    return response


def origin_of(request: web.Request) -> Origin:
    return Origin(platform=PLATFORM, user_id=client_id_of(request), channel_id="playground")


class PlaygroundApi:
    """Request handlers over a `PlaygroundContext`; `routes()` maps them to URLs."""

    def __init__(self, ctx: PlaygroundContext) -> None:
        self.ctx = ctx

    async def session(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "csrf": self.ctx.guard.csrf_token(client_id_of(request)),
                "limits": {k: [low, high] for k, (_, low, high, _, _) in LIMITS.items()},
                "help": {k: text for k, (*_, text) in LIMITS.items()},
                "defaults": {k: v for k, v in DEFAULTS.items() if k != "seed"},
                "model_version": self.ctx.chat.backend.model_version,
                "is_admin": self.ctx.guard.is_admin(request),
            },
            headers={"Cache-Control": "no-store"},
        )

    async def generate(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await read_json(request)
        except InvalidRequest as error:
            return error_response(str(error))
        params = body.get("params") or {}
        if not isinstance(params, dict):
            return error_response("params must be an object of sampling options.")
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            return error_response("The prompt is empty: write the start of the text to continue.")
        origin = origin_of(request)
        return await stream_events(
            request, lambda: self.ctx.chat.generate_stream(origin, prompt, params)
        )

    async def regenerate(self, request: web.Request) -> web.StreamResponse:
        try:
            gid = await _own_generation(self.ctx, request)
        except InvalidRequest as error:
            return error_response(str(error), 404)
        origin = origin_of(request)
        return await stream_events(request, lambda: self.ctx.chat.regenerate_stream(gid, origin))

    async def continue_(self, request: web.Request) -> web.StreamResponse:
        try:
            gid = await _own_generation(self.ctx, request)
        except InvalidRequest as error:
            return error_response(str(error), 404)
        origin = origin_of(request)
        return await stream_events(request, lambda: self.ctx.chat.continue_stream(gid, origin))

    async def rate(self, request: web.Request) -> web.Response:
        rater = client_id_of(request)
        try:
            gid = await _own_generation(self.ctx, request)
        except InvalidRequest as error:
            return error_response(str(error), 404)
        try:
            if request.method == "DELETE":
                await self.ctx.chat.unrate(gid, rater)
            else:
                emoji = (await read_json(request)).get("emoji")
                if emoji not in RATING_BUTTONS:
                    raise InvalidRequest("Rate with 👍 or 👎.")
                await self.ctx.chat.rate(gid, rater, emoji)
        except InvalidRequest as error:
            return error_response(str(error))
        record = await self.ctx.chat.get(gid)
        return web.json_response({"generation": generation_json(record, rater)})

    async def history(self, request: web.Request) -> web.Response:
        viewer = client_id_of(request)
        flt = GenerationFilter(platform=PLATFORM, user_id=viewer)
        records = await self.ctx.db.run(self.ctx.browser.search, flt, HISTORY_LIMIT)
        return web.json_response(
            {"generations": [generation_json(r, viewer) for r in records]},
            headers={"Cache-Control": "no-store"},
        )

    def routes(self) -> list[web.RouteDef]:
        """The playground's JSON/SSE endpoints (the page itself is static)."""
        return [
            web.get("/api/session", self.session),
            web.post("/api/generate", self.generate),
            web.post("/api/generations/{generation_id}/regenerate", self.regenerate),
            web.post("/api/generations/{generation_id}/continue", self.continue_),
            web.post("/api/generations/{generation_id}/rating", self.rate),
            web.delete("/api/generations/{generation_id}/rating", self.rate),
            web.get("/api/history", self.history),
        ]


__all__ = ["PlaygroundApi", "PlaygroundContext", "generation_json"]
