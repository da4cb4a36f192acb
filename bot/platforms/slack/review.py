"""`/gpt2bot-admin review next|vote|stats`: the blind side-by-side review of two model versions
in Slack, for the bot's owners (authorized and audited by `SlackAdmin` like every admin
command). Text only: the pair is shown as A and B without version names and the owner votes
with `review vote ID a|b|tie`, which reveals which version was which.
"""

from __future__ import annotations

from typing import Protocol

from admin.auth import Actor
from admin.base import AdminServices
from bot.platforms.slack.text import escape
from model.backends.base import BackendError

COMMAND = "/gpt2bot-admin"
PROMPT_CHARS = 500
OUTPUT_CHARS = 800
SOURCES = {"fixed": "a fixed evaluation prompt", "recent": "a member's recent prompt"}
USAGE = (
    f"`{COMMAND} review next [VERSION_A] [VERSION_B]` · `review vote ID a|b|tie` · `review stats`"
)


class Context(Protocol):
    service: AdminServices
    actor: Actor


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return escape(text if len(text) <= limit else text[: limit - 1].rstrip() + "…")


def _quote(text: str) -> str:
    body = _clip(text, OUTPUT_CHARS) or "_(nothing: the model ended the text here)_"
    return "\n".join(f"> {line}" for line in body.splitlines())


async def review_next(ctx: Context, args: list[str]) -> str:
    if len(args) > 2:
        return f"Name at most two versions: {USAGE}."
    try:
        item = await ctx.service.reviews.next_item(ctx.actor.user_id, *args)
    except BackendError as error:  # busy, timed out: the sentence says what to do
        return str(error)
    return "\n".join(
        [
            f"*Blind review #{item.id}*: which output is better? "
            f"({SOURCES.get(item.source, item.source)}; same seed and settings for both)",
            f"*Prompt:* {_clip(item.prompt, PROMPT_CHARS)}",
            "*A*",
            _quote(item.output_a),
            "*B*",
            _quote(item.output_b),
            f"Vote: `{COMMAND} review vote {item.id} a` (A is better), "
            f"`… {item.id} b` (B is better) or `… {item.id} tie`.",
        ]
    )


async def review_vote(ctx: Context, args: list[str]) -> str:
    if len(args) != 2 or not args[0].lstrip("#").isdigit():
        return f"Say which pair and which output: `{COMMAND} review vote 12 a` (or `b`, `tie`)."
    item = await ctx.service.reviews.record(ctx.actor.user_id, int(args[0].lstrip("#")), args[1])
    sides = f"A was `{escape(item.version_a)}`, B was `{escape(item.version_b)}`"
    winner = item.winner
    verdict = "you called it a tie" if winner is None else f"you preferred `{escape(winner)}`"
    return f"{sides}: {verdict}. Next: `{COMMAND} review next`."


async def review_stats(ctx: Context, args: list[str]) -> str:
    rates = await ctx.service.reviews.win_rates()
    if not rates:
        return f"No blind-review verdicts yet: `{COMMAND} review next` shows a pair to judge."
    lines = ["*Blind review win rates* (a tie counts half a win for each)"]
    for r in rates:
        first, second = escape(r.first), escape(r.second)
        lines.append(
            f"`{first}` vs `{second}`: {r.judged} judged · `{first}` {r.first_wins} won "
            f"({r.first_rate:.0%}) · `{second}` {r.second_wins} won ({r.second_rate:.0%}) · "
            f"{r.ties} tied"
        )
    return "\n".join(lines)
