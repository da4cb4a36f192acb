"""A server's own model line: `line show` (any admin), `line enable|disable|share` (the bot's
owners), `line add|queue|retrain|use|rollback` (the server's admins, once the owners enabled
its line: `admin.auth.Scope.LINE`). The line is always the server asked in
(docs/communities.md).
"""

from __future__ import annotations

from typing import Any

from bot.admin_commands.context import Command, Context
from bot.params import InvalidRequest
from storage import FINISHED_STATUSES, TrainingRunRecord
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


def _queue_options(ctx: Context) -> dict[str, Any]:
    if not ctx.args:
        return {}
    if len(ctx.args) != 2 or ctx.args[0] not in ("approve", "reject"):
        how = ctx.surface.example("line queue approve ID")
        raise InvalidRequest(f"Say {how} or {ctx.surface.code('reject ID')}.")
    return {ctx.args[0]: ctx.number("ID", args=ctx.args[1:])}


async def line_queue(ctx: Context) -> str:
    """Options: `approve` or `reject` (one of this line's queued samples); neither lists them."""
    approve, reject = ctx.options.get("approve"), ctx.options.get("reject")
    if approve is not None and reject is not None:
        raise InvalidRequest("Approve or reject one sample at a time.")
    if approve is None and reject is None:
        items = await ctx.services.lines.queue(_key(ctx))
        return ctx.render.review_queue(items, "line queue")
    ok = approve is not None
    sample_id = approve if approve is not None else reject
    assert sample_id is not None
    done = await ctx.services.lines.review(ctx.actor.user_id, _key(ctx), sample_id, ok)
    return ctx.render.queue_decided(done, ok)


async def line_retrain(ctx: Context) -> str:
    tell = ctx.tell

    def told_at_the_end(info: TrainingRunRecord) -> None:
        if tell is not None and info.status in FINISHED_STATUSES:
            ctx.spawn(tell(ctx.render.training_run(info)))

    progress = ctx.progress or told_at_the_end
    run = await ctx.services.lines.retrain(ctx.actor.user_id, _key(ctx), progress)
    return ctx.render.run_started(run, telling=tell is not None)


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


def _rest(ctx: Context) -> dict[str, Any]:
    return {"text": ctx.rest.strip()}


COMMANDS = (
    Command(("line", "show"), "line show", line_show),
    Command(("line", "enable"), "line enable", line_enable),
    Command(("line", "disable"), "line disable", line_disable),
    Command(("line", "share"), "line share on|off", line_share, _on_off),
    Command(("line", "add"), "line add TEXT", line_add, _rest),
    Command(("line", "queue"), "line queue [approve ID|reject ID]", line_queue, _queue_options),
    Command(("line", "retrain"), "line retrain", line_retrain),
    Command(("line", "use"), "line use VERSION [force]", line_use, _version),
    Command(("line", "rollback"), "line rollback", line_rollback),
)
