"""`/gpt2bot-admin ab start VERSION [SHARE] | ab status | ab stop`: A/B experiments in Slack
(authorized and audited by `SlackAdmin` like every admin command: starting and stopping are
for the bot's owners, `status` for any admin), and the experiment's lines in `stats`. Text
only here; `stats` uploads the chart of both arms beside the ratings chart.
"""

from __future__ import annotations

from typing import Protocol

from admin.ab_report import ABReport, latest_report, parse_share, report_of
from admin.auth import Actor
from admin.base import AdminServices
from bot.platforms import ab_text, fleet_text
from bot.platforms.slack.text import escape

COMMAND = "/gpt2bot-admin"
USAGE = f"`{COMMAND} ab start VERSION [SHARE]` · `ab status` · `ab stop`"
REVIEW_HINT = f" (`{COMMAND} review next` shows the pair to judge)"
NO_EXPERIMENT = f"No A/B experiment has run yet: `{COMMAND} ab start VERSION` starts one."


class Context(Protocol):
    service: AdminServices
    actor: Actor


def _bold(text: str) -> str:
    return f"*{escape(text)}*"


def _code(text: str) -> str:
    return f"`{escape(text)}`"


def experiment_text(report: ABReport) -> str:
    """The experiment in Slack mrkdwn."""
    return "\n".join(ab_text.experiment_lines(report, _bold, _code, REVIEW_HINT))


async def latest(service: AdminServices) -> ABReport | None:
    return await latest_report(service.experiments, service.reviews)


async def ab_start(ctx: Context, args: list[str]) -> str:
    if not args or len(args) > 2:
        return f"Name the candidate, and if you like its share of members: {USAGE}."
    share = parse_share(args[1] if len(args) == 2 else None)
    status = await ctx.service.experiments.start(ctx.actor.user_id, args[0], share)
    followed = fleet_text.experiment_followed(await ctx.service.fleet.view())
    return f"Started. {followed}\n" + experiment_text(await report_of(status, ctx.service.reviews))


async def ab_status(ctx: Context, args: list[str]) -> str:
    report = await latest(ctx.service)
    return NO_EXPERIMENT if report is None else experiment_text(report)


async def ab_stop(ctx: Context, args: list[str]) -> str:
    status = await ctx.service.experiments.stop(ctx.actor.user_id)
    followed = fleet_text.experiment_followed(await ctx.service.fleet.view())
    return f"Stopped. {followed}\n" + experiment_text(await report_of(status, ctx.service.reviews))
