"""Comparing versions: `ab start VERSION [SHARE] | ab status | ab stop` (A/B experiments on
members' ratings: starting and stopping for the bot's owners, `status` for any admin) and
`review next | vote | stats` (the owners' blind side-by-side review: the pair is shown as A
and B without version names, and a vote reveals which version was which)."""

from __future__ import annotations

from typing import Any

from admin.ab_report import ABReport, ab_chart, latest_report, parse_share, report_of
from admin.base import AdminServices
from admin.results import ExperimentStatus
from bot.admin_commands.context import Command, Context
from bot.admin_commands.surface import AdminReply, Chart
from bot.params import InvalidRequest
from bot.platforms import fleet_text


async def latest(services: AdminServices) -> ABReport | None:
    return await latest_report(services.experiments, services.reviews)


def _ab_usage(ctx: Context) -> str:
    code = ctx.surface.code
    start = ctx.surface.example("ab start VERSION [SHARE]")
    return f"{start} · {code('ab status')} · {code('ab stop')}"


def _start_options(ctx: Context) -> dict[str, Any]:
    if not ctx.args or len(ctx.args) > 2:
        usage = _ab_usage(ctx)
        raise InvalidRequest(f"Name the candidate, and if you like its share of members: {usage}.")
    return {"version": ctx.args[0], "share": parse_share(ctx.args[1] if ctx.args[1:] else None)}


async def experiment_reply(ctx: Context, report: ABReport, intro: str = "") -> AdminReply | str:
    """An experiment as `ab` (and `line ab`) shows it: its text and its chart."""
    chart = Chart("ab.png", f"A/B experiment #{report.status.id}", await ab_chart(report.status))
    return ctx.render.experiment(report, chart, intro)


async def _changed(ctx: Context, status: ExperimentStatus, done: str) -> AdminReply | str:
    followed = fleet_text.experiment_followed(await ctx.services.fleet.view())
    report = await report_of(status, ctx.services.reviews)
    return await experiment_reply(ctx, report, f"{done} {followed}\n")


async def ab_start(ctx: Context) -> AdminReply | str:
    """Options: `version` (the candidate) and `share` (of members; None: `AB_SHARE`)."""
    version, share = ctx.options["version"], ctx.options.get("share")
    status = await ctx.services.experiments.start(ctx.actor.user_id, version, share)
    return await _changed(ctx, status, "Started.")


async def ab_status(ctx: Context) -> AdminReply | str:
    report = await latest(ctx.services)
    return ctx.render.no_experiment() if report is None else await experiment_reply(ctx, report)


async def ab_stop(ctx: Context) -> AdminReply | str:
    status = await ctx.services.experiments.stop(ctx.actor.user_id)
    return await _changed(ctx, status, "Stopped.")


def _pair_options(ctx: Context) -> dict[str, Any]:
    if len(ctx.args) > 2:
        code = ctx.surface.code
        next_item = ctx.surface.example("review next [VERSION_A] [VERSION_B]")
        usage = f"{next_item} · {code('review vote ID a|b|tie')} · {code('review stats')}"
        raise InvalidRequest(f"Name at most two versions: {usage}.")
    return dict(zip(("version_a", "version_b"), ctx.args, strict=False))


async def review_next(ctx: Context) -> AdminReply | str:
    """Options: `version_a`, `version_b` (defaults: the active one and the candidate or the
    newest), or `same_pair_as` (a review item whose pair to show again)."""
    pair = {
        k: ctx.options[k] for k in ("version_a", "version_b", "same_pair_as") if k in ctx.options
    }
    item = await ctx.services.reviews.next_item(ctx.actor.user_id, **pair)
    return ctx.render.blind_pair(item)


def _vote_options(ctx: Context) -> dict[str, Any]:
    if len(ctx.args) != 2 or not ctx.args[0].lstrip("#").isdigit():
        example = ctx.surface.example("review vote 12 a")
        raise InvalidRequest(f"Say which pair and which output: {example} (or `b`, `tie`).")
    return {"id": int(ctx.args[0].lstrip("#")), "choice": ctx.args[1]}


async def review_vote(ctx: Context) -> AdminReply | str:
    """Options: `id` (the review item) and `choice` (`a`, `b` or `tie`)."""
    item = await ctx.services.reviews.record(
        ctx.actor.user_id, ctx.options["id"], ctx.options["choice"]
    )
    return ctx.render.revealed(item)


async def review_stats(ctx: Context) -> str:
    return ctx.render.win_rates(await ctx.services.reviews.win_rates())


COMMANDS = (
    Command(("review", "next"), "review next [VERSION_A] [VERSION_B]", review_next, _pair_options),
    Command(("review", "vote"), "review vote ID a|b|tie", review_vote, _vote_options),
    Command(("review", "stats"), "review stats", review_stats),
    Command(("ab", "start"), "ab start VERSION [SHARE]", ab_start, _start_options),
    Command(("ab", "status"), "ab status", ab_status),
    Command(("ab", "stop"), "ab stop", ab_stop),
)
