"""The dashboard's blind review page (`/admin/review`) and its API: the next pair of outputs
(no version names until the verdict), the verdict, the win rates per pair, and their export.

Making a pair and voting go through `AdminGate.authorize` (owners only, audited); the work is
the admin `ReviewService` that Discord's `/admin review` uses too.
"""

from __future__ import annotations

import io
from typing import Any

from aiohttp import web

from admin.auth import NotAuthorized
from admin.results import BlindPair
from bot.export import FORMATS, REVIEW_EXPORTS, write_reviews
from bot.params import InvalidRequest
from bot.platforms.web.dashboard import DashboardContext, _actor, download
from bot.platforms.web.playground import error_response, read_json
from model.backends.base import BackendError, Busy
from storage import PairWinRate, ReviewItemRecord


def pair_json(item: BlindPair) -> dict[str, Any]:
    return {
        "id": item.id,
        "prompt": item.prompt,
        "source": item.source,
        "output_a": item.output_a,
        "output_b": item.output_b,
    }


def revealed_json(item: ReviewItemRecord) -> dict[str, Any]:
    return {
        "id": item.id,
        "verdict": item.verdict,
        "winner": item.winner,
        "version_a": item.version_a,
        "version_b": item.version_b,
    }


def rate_json(rate: PairWinRate) -> dict[str, Any]:
    return {
        "first": rate.first,
        "second": rate.second,
        "judged": rate.judged,
        "first_wins": rate.first_wins,
        "second_wins": rate.second_wins,
        "ties": rate.ties,
        "first_rate": rate.first_rate,
        "second_rate": rate.second_rate,
    }


def verdict_message(item: ReviewItemRecord) -> str:
    """ "A was v2, B was v1: you preferred v2." — the reveal after a vote."""
    sides = f"A was {item.version_a}, B was {item.version_b}"
    if item.winner is None:
        return f"{sides}: you called it a tie."
    return f"{sides}: you preferred {item.winner}."


def _refusal(error: Exception) -> web.Response:
    """The gate's refusal, a bad request or a busy backend; a use-case's own refusals
    (`AdminError`) are answered by the platform's `catch_errors` middleware."""
    if isinstance(error, NotAuthorized):
        return error_response(str(error), 403)
    if isinstance(error, Busy):
        retry = f"{max(1, round(error.retry_after_s))}"
        return error_response(str(error), 503, **{"Retry-After": retry})
    return error_response(str(error), 400 if isinstance(error, InvalidRequest) else 503)


def _name(body: dict[str, Any], key: str) -> str | None:
    return str(body.get(key) or "").strip() or None


class ReviewApi:
    def __init__(self, ctx: DashboardContext) -> None:
        self.ctx = ctx

    async def next(self, request: web.Request) -> web.Response:
        actor = _actor(request)
        try:
            body = await read_json(request)
            same = body.get("same_pair_as")
            if same is not None and not isinstance(same, int):
                raise InvalidRequest("same_pair_as must be a pair number.")
            first, second = _name(body, "version_a"), _name(body, "version_b")
            detail = {"version_a": first, "version_b": second, "same_pair_as": same}
            await self.ctx.gate.authorize(actor, "review.next", detail)
            item = await self.ctx.admin.reviews.next_item(
                actor.user_id, first, second, same_pair_as=same
            )
        except (NotAuthorized, InvalidRequest, BackendError) as error:
            return _refusal(error)
        return web.json_response({"item": pair_json(item)})

    async def vote(self, request: web.Request) -> web.Response:
        actor = _actor(request)
        try:
            body = await read_json(request)
            item_id, choice = body.get("id"), str(body.get("choice") or "")
            if not isinstance(item_id, int):
                raise InvalidRequest("Say which pair the verdict is for (its number).")
            await self.ctx.gate.authorize(actor, "review.vote", {"id": item_id, "choice": choice})
            item = await self.ctx.admin.reviews.record(actor.user_id, item_id, choice)
        except (NotAuthorized, InvalidRequest) as error:
            return _refusal(error)
        rates = await self.ctx.admin.reviews.win_rates()
        return web.json_response(
            {
                "message": verdict_message(item),
                "revealed": revealed_json(item),
                "rates": [rate_json(r) for r in rates],
            }
        )

    async def rates(self, request: web.Request) -> web.Response:
        rates = await self.ctx.admin.reviews.win_rates()
        return web.json_response({"rates": [rate_json(r) for r in rates]})

    async def export(self, request: web.Request) -> web.Response:
        fmt, what = request.query.get("format", "jsonl"), request.query.get("what", "verdicts")
        if fmt not in FORMATS or what not in REVIEW_EXPORTS:
            formats, whats = " or ".join(FORMATS), " or ".join(REVIEW_EXPORTS)
            return error_response(f"format must be {formats}; what must be {whats}.")
        await self.ctx.gate.authorize(_actor(request), "web.review.export", {"what": what})

        def build(out: io.StringIO) -> None:
            write_reviews(self.ctx.db, what, out, fmt)

        return await download(self.ctx, build, fmt, f"gpt2bot-{what}")

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/admin/api/review/next", self.next),
            web.post("/admin/api/review/vote", self.vote),
            web.get("/admin/api/review/rates", self.rates),
            web.get("/admin/api/review/export", self.export),
        ]
