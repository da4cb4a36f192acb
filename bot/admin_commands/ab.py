"""Comparing versions: `ab start VERSION [SHARE] | ab status | ab stop` (A/B experiments on
members' ratings: starting and stopping for the bot's owners, `status` for any admin) and
`review next | vote | stats` (the owners' blind side-by-side review: the pair is shown as A
and B without version names, and a vote reveals which version was which)."""

from __future__ import annotations

from admin.ab_report import ABReport, latest_report, parse_share, report_of
from admin.base import AdminServices
from bot.admin_commands.context import Command, Context, Surface
from bot.platforms import ab_text, fleet_text
from model.backends.base import BackendError

PROMPT_CHARS = 500
OUTPUT_CHARS = 800
SOURCES = {"fixed": "a fixed evaluation prompt", "recent": "a member's recent prompt"}


def _code(surface: Surface) -> ab_text.Markup:
    return lambda text: surface.code(surface.escape(text))


def _bold(surface: Surface) -> ab_text.Markup:
    return lambda text: surface.bold(surface.escape(text))


def experiment_text(report: ABReport, surface: Surface) -> str:
    """The experiment in the platform's markup: head, both arms, the decision, the review."""
    hint = f" ({surface.example('review next')} shows the pair to judge)"
    return "\n".join(ab_text.experiment_lines(report, _bold(surface), _code(surface), hint))


async def latest(services: AdminServices) -> ABReport | None:
    return await latest_report(services.experiments, services.reviews)


def _ab_usage(surface: Surface) -> str:
    code = surface.code
    return (
        f"{surface.example('ab start VERSION [SHARE]')} · {code('ab status')} · {code('ab stop')}"
    )


async def ab_start(ctx: Context) -> str:
    if not ctx.args or len(ctx.args) > 2:
        usage = _ab_usage(ctx.surface)
        return f"Name the candidate, and if you like its share of members: {usage}."
    share = parse_share(ctx.args[1] if len(ctx.args) == 2 else None)
    status = await ctx.services.experiments.start(ctx.actor.user_id, ctx.args[0], share)
    followed = fleet_text.experiment_followed(await ctx.services.fleet.view())
    report = await report_of(status, ctx.services.reviews)
    return f"Started. {followed}\n" + experiment_text(report, ctx.surface)


async def ab_status(ctx: Context) -> str:
    report = await latest(ctx.services)
    if report is None:
        start = ctx.surface.example("ab start VERSION")
        return f"No A/B experiment has run yet: {start} starts one."
    return experiment_text(report, ctx.surface)


async def ab_stop(ctx: Context) -> str:
    status = await ctx.services.experiments.stop(ctx.actor.user_id)
    followed = fleet_text.experiment_followed(await ctx.services.fleet.view())
    report = await report_of(status, ctx.services.reviews)
    return f"Stopped. {followed}\n" + experiment_text(report, ctx.surface)


def _clip(surface: Surface, text: str, limit: int) -> str:
    text = text.strip()
    return surface.escape(text if len(text) <= limit else text[: limit - 1].rstrip() + "…")


def _quote(surface: Surface, text: str) -> str:
    body = _clip(surface, text, OUTPUT_CHARS) or "_(nothing: the model ended the text here)_"
    return "\n".join(f"> {line}" for line in body.splitlines())


def _review_usage(surface: Surface) -> str:
    code = surface.code
    next_item = surface.example("review next [VERSION_A] [VERSION_B]")
    return f"{next_item} · {code('review vote ID a|b|tie')} · {code('review stats')}"


async def review_next(ctx: Context) -> str:
    if len(ctx.args) > 2:
        return f"Name at most two versions: {_review_usage(ctx.surface)}."
    try:
        item = await ctx.services.reviews.next_item(ctx.actor.user_id, *ctx.args)
    except BackendError as error:  # busy, timed out: the sentence says what to do
        return str(error)
    surface, code = ctx.surface, ctx.surface.code
    return "\n".join(
        [
            f"{surface.bold(f'Blind review #{item.id}')}: which output is better? "
            f"({SOURCES.get(item.source, item.source)}; same seed and settings for both)",
            f"{surface.bold('Prompt:')} {_clip(surface, item.prompt, PROMPT_CHARS)}",
            surface.bold("A"),
            _quote(surface, item.output_a),
            surface.bold("B"),
            _quote(surface, item.output_b),
            f"Vote: {surface.example(f'review vote {item.id} a')} (A is better), "
            f"{code(f'… {item.id} b')} (B is better) or {code(f'… {item.id} tie')}.",
        ]
    )


async def review_vote(ctx: Context) -> str:
    surface = ctx.surface
    if len(ctx.args) != 2 or not ctx.args[0].lstrip("#").isdigit():
        example = surface.example("review vote 12 a")
        return f"Say which pair and which output: {example} (or `b`, `tie`)."
    item_id = int(ctx.args[0].lstrip("#"))
    item = await ctx.services.reviews.record(ctx.actor.user_id, item_id, ctx.args[1])
    code = _code(surface)
    sides = f"A was {code(item.version_a)}, B was {code(item.version_b)}"
    winner = item.winner
    verdict = "you called it a tie" if winner is None else f"you preferred {code(winner)}"
    return f"{sides}: {verdict}. Next: {surface.example('review next')}."


async def review_stats(ctx: Context) -> str:
    rates = await ctx.services.reviews.win_rates()
    surface = ctx.surface
    if not rates:
        return (
            f"No blind-review verdicts yet: {surface.example('review next')} shows a pair to judge."
        )
    code = _code(surface)
    lines = [f"{surface.bold('Blind review win rates')} (a tie counts half a win for each)"]
    for r in rates:
        first, second = code(r.first), code(r.second)
        lines.append(
            f"{first} vs {second}: {r.judged} judged · {first} {r.first_wins} won "
            f"({r.first_rate:.0%}) · {second} {r.second_wins} won ({r.second_rate:.0%}) · "
            f"{r.ties} tied"
        )
    return "\n".join(lines)


COMMANDS = (
    Command(("review", "next"), "review next [VERSION_A] [VERSION_B]", review_next),
    Command(("review", "vote"), "review vote ID a|b|tie", review_vote),
    Command(("review", "stats"), "review stats", review_stats),
    Command(("ab", "start"), "ab start VERSION [SHARE]", ab_start),
    Command(("ab", "status"), "ab status", ab_status),
    Command(("ab", "stop"), "ab stop", ab_stop),
)
