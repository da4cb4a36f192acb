"""A server's own model line: `line show` (any admin), `line enable|disable|share` (the bot's
owners), `line add|queue|retrain|schedule|use|rollback|ab|review` (the server's admins, once the
owners enabled its line: `admin.auth.Scope.LINE`). The line is always the server asked in
(docs/communities.md). `line ab start|status|stop` answers as `ab ...` does
(bot/admin_commands/ab.py).
"""

from __future__ import annotations

from typing import Any

from admin.ab_report import parse_share, report_of
from bot.admin_commands.ab import experiment_reply
from bot.admin_commands.context import Command, Context
from bot.admin_commands.learning import queue_decision, queue_options, run_progress
from bot.admin_commands.surface import AdminReply
from bot.params import InvalidRequest
from storage.servers import server_key


def _key(ctx: Context) -> str:
    return server_key(ctx.actor.platform, ctx.server_id)


async def line_show(ctx: Context) -> str:
    return ctx.render.line(await ctx.services.lines.status(_key(ctx)))


async def line_enable(ctx: Context) -> str:
    record = await ctx.services.lines.allow(ctx.actor.user_id, _key(ctx), enabled=True)
    return ctx.render.line_allowed(record)


async def line_disable(ctx: Context) -> str:
    record = await ctx.services.lines.allow(ctx.actor.user_id, _key(ctx), enabled=False)
    return ctx.render.line_allowed(record)


def _on_off(ctx: Context) -> dict[str, Any]:
    if ctx.args not in (["on"], ["off"]):
        raise InvalidRequest(f"Say {ctx.surface.example('line share on')} or `off`.")
    return {"enabled": ctx.args == ["on"]}


async def line_share(ctx: Context) -> str:
    """Options: `enabled`: whether the line's texts and ratings also train the shared model."""
    shares = bool(ctx.options["enabled"])
    record = await ctx.services.lines.allow(ctx.actor.user_id, _key(ctx), shares=shares)
    return ctx.render.line_allowed(record)


async def line_add(ctx: Context) -> str:
    """Options: `text`: one curated text for this server's line only."""
    text = str(ctx.options.get("text") or "").strip()
    if not text:
        raise InvalidRequest(f"Give the text: {ctx.surface.example('line add Some text')}.")
    report = await ctx.services.lines.add(ctx.actor.user_id, _key(ctx), [text])
    return ctx.render.curated_added([report])


async def line_queue(ctx: Context) -> str:
    """Options: `approve` or `reject` (one of this line's queued samples); neither lists them."""
    decision = queue_decision(ctx)
    if decision is None:
        items = await ctx.services.lines.queue(_key(ctx))
        return ctx.render.review_queue(items, "line queue")
    sample_id, ok = decision
    done = await ctx.services.lines.review(ctx.actor.user_id, _key(ctx), sample_id, ok)
    return ctx.render.queue_decided(done, ok)


async def line_retrain(ctx: Context) -> str:
    run = await ctx.services.lines.retrain(ctx.actor.user_id, _key(ctx), run_progress(ctx))
    return ctx.render.run_started(run, telling=ctx.tell is not None)


def _version(ctx: Context) -> dict[str, Any]:
    if not ctx.args:
        raise InvalidRequest(f"Name the version: {ctx.surface.example('line use VERSION')}.")
    return {"version": ctx.args[0], "force": ctx.args[1:] == ["force"]}


async def line_use(ctx: Context) -> str:
    """Options: `version` (one of this line's), and `force` past the promotion gate."""
    version, force = ctx.options["version"], bool(ctx.options.get("force"))
    record = await ctx.services.lines.use(ctx.actor.user_id, _key(ctx), version, force)
    return ctx.render.line_switched(record, rolled_back=False)


async def line_rollback(ctx: Context) -> str:
    record = await ctx.services.lines.rollback(ctx.actor.user_id, _key(ctx))
    return ctx.render.line_switched(record, rolled_back=True)


def _cron(ctx: Context) -> dict[str, Any]:
    if not ctx.args:
        example = ctx.surface.example("line schedule 0 3 * * 0")
        raise InvalidRequest(f"Give a cron expression or {ctx.surface.code('off')}: {example}.")
    return {"cron": None if ctx.args == ["off"] else " ".join(ctx.args)}


async def line_schedule(ctx: Context) -> str:
    """Options: `cron` (five cron fields), or None to turn the line's own schedule off. A
    scheduled run trains only when the line has new data since its last run."""
    cron = ctx.options.get("cron")
    upcoming = await ctx.services.lines.schedule(ctx.actor.user_id, _key(ctx), cron)
    return ctx.render.schedule(cron, upcoming)


AB_ACTIONS = ("start", "status", "stop")


def _ab_options(ctx: Context) -> dict[str, Any]:
    action, rest = (ctx.args[0], ctx.args[1:]) if ctx.args else ("status", [])
    if action not in AB_ACTIONS or (action == "start" and not 1 <= len(rest) <= 2):
        start = ctx.surface.example("line ab start VERSION [SHARE]")
        others = f"{ctx.surface.code('line ab status')} · {ctx.surface.code('line ab stop')}"
        raise InvalidRequest(f"Say {start} (one of this line's versions) · {others}.")
    share = parse_share(rest[1]) if action == "start" and rest[1:] else None
    return {"action": action, "version": rest[0] if rest else None, "share": share}


async def line_ab(ctx: Context) -> AdminReply | str:
    """Options: `action` (`start`, `status` or `stop`), and for `start` the `version` (one of
    this line's) and its `share` of this server's members (None: `AB_SHARE`)."""
    lines, key, actor = ctx.services.lines, _key(ctx), ctx.actor.user_id
    action = ctx.options.get("action") or "status"
    if action == "start":
        version = ctx.options.get("version")
        if not version:
            raise InvalidRequest(f"Name the candidate: {ctx.surface.example('line ab start V')}.")
        status = await lines.ab_start(actor, key, version, ctx.options.get("share"))
    elif action == "stop":
        status = await lines.ab_stop(actor, key)
    else:
        found = await lines.ab_status(key)
        if found is None:
            start = ctx.surface.example("line ab start VERSION")
            return f"No A/B experiment has run in this line yet: {start} starts one."
        status = found
    done = {"start": "Started.", "stop": "Stopped."}.get(action, "")
    report = await report_of(status, ctx.services.reviews)
    return await experiment_reply(ctx, report, f"{done} In {key}'s line.\n" if done else "")


REVIEW_ACTIONS = ("next", "vote", "stats")


def _review_options(ctx: Context) -> dict[str, Any]:
    action, rest = (ctx.args[0], ctx.args[1:]) if ctx.args else ("next", [])
    vote = action == "vote" and len(rest) == 2 and rest[0].lstrip("#").isdigit()
    if action not in REVIEW_ACTIONS or (action == "vote" and not vote) or len(rest) > 2:
        code = ctx.surface.code
        next_pair = ctx.surface.example("line review next [VERSION_A] [VERSION_B]")
        usage = f"{next_pair} · {code('line review vote ID a|b|tie')} · {code('line review stats')}"
        raise InvalidRequest(f"Say {usage}.")
    if action == "vote":
        return {"action": action, "id": int(rest[0].lstrip("#")), "choice": rest[1]}
    return {"action": action, **dict(zip(("version_a", "version_b"), rest, strict=False))}


async def line_review(ctx: Context) -> AdminReply | str:
    """Options: `action` (`next`, `vote` or `stats`); for `next` optionally `version_a`,
    `version_b` (two of this line's versions) or `same_pair_as`; for `vote` the item `id` and
    the `choice` (`a`, `b` or `tie`). The blind review of this line's versions only."""
    lines, key, actor = ctx.services.lines, _key(ctx), ctx.actor.user_id
    action = ctx.options.get("action") or "next"
    if action == "vote":
        item = await lines.review_vote(actor, key, ctx.options["id"], ctx.options["choice"])
        return ctx.render.revealed(item, "line review")
    if action == "stats":
        return ctx.render.win_rates(await lines.review_stats(key), "line review")
    pair = [ctx.options.get(k) for k in ("version_a", "version_b", "same_pair_as")]
    return ctx.render.blind_pair(await lines.review_next(actor, key, *pair), "line review")


def _rest(ctx: Context) -> dict[str, Any]:
    return {"text": ctx.rest.strip()}


COMMANDS = (
    Command(("line", "show"), "line show", line_show),
    Command(("line", "enable"), "line enable", line_enable),
    Command(("line", "disable"), "line disable", line_disable),
    Command(("line", "share"), "line share on|off", line_share, _on_off),
    Command(("line", "add"), "line add TEXT", line_add, _rest),
    Command(
        ("line", "queue"),
        "line queue [approve ID|reject ID]",
        line_queue,
        queue_options("line queue"),
    ),
    Command(("line", "retrain"), "line retrain", line_retrain),
    Command(("line", "use"), "line use VERSION [force]", line_use, _version),
    Command(("line", "rollback"), "line rollback", line_rollback),
    Command(("line", "schedule"), "line schedule CRON|off", line_schedule, _cron),
    Command(("line", "ab"), "line ab start VERSION [SHARE]|status|stop", line_ab, _ab_options),
    Command(
        ("line", "review"),
        "line review next [A] [B]|vote ID a|b|tie|stats",
        line_review,
        _review_options,
    ),
)
