"""A server's own settings and outputs, for its admins: `server show | channels | cooldown |
caps | defaults | training | blocklist | template | roles` (where `/generate` is answered, a
member's wait, caps and defaults, whether ratings train, extra blocked terms, the prompt
template of the server or of one channel, which roles are its admins) and `server reports |
keep | delete` (outputs members reported, and deleting one made there).

Each command reads its options by name (a typed line's words become them in its `parse`);
the admin services check the values and say what is wrong.
"""

from __future__ import annotations

import re
from typing import Any

from bot.admin_commands.context import Command, Context
from bot.params import InvalidRequest

CAPS = ("max_new_tokens", "samples")
DEFAULTS = {"temperature": float, "max_new_tokens": int}
CLEARED = ("none", "off", "-")
# `server template [#channel] TEXT`: a first word that mentions a channel, as chats write one
# (`<#ID>`, `<#ID|name>`) or as a surface reads one (`#name`)
LEADING_WORD = re.compile(r"\s*(\S+)\s?(.*)", re.DOTALL)
MENTION = re.compile(r"<#([^|>]+)(?:\|[^>]*)?>")


async def server_show(ctx: Context) -> str:
    record = await ctx.services.servers.get(ctx.actor.platform, ctx.server_id)
    return ctx.render.server_settings(record, saved=False)


def _channels(ctx: Context) -> dict[str, Any]:
    if not ctx.args:
        example = ctx.surface.example("server channels #bots #playground")
        raise InvalidRequest(f"Name the channels, or `all`: {example}.")
    ids = [] if ctx.args == ["all"] else ctx.surface.channel_ids(" ".join(ctx.args))
    return {"channels": ids}


async def server_channels(ctx: Context) -> str:
    """Options: `channels` (ids; none: every channel)."""
    return await _set(ctx, allowed_channels=ctx.options["channels"])


def _seconds(ctx: Context) -> dict[str, Any]:
    try:
        return {"seconds": float(ctx.args[0]) if len(ctx.args) == 1 else None}
    except ValueError:
        return {"seconds": None}


async def server_cooldown(ctx: Context) -> str:
    """Options: `seconds` between one member's requests (0 turns it off)."""
    seconds = ctx.options.get("seconds")
    if seconds is None:
        example = ctx.surface.example("server cooldown 10")
        return f"Give the seconds: {example} (0 turns it off)."
    return await _set(ctx, cooldown_s=seconds)


def _caps(ctx: Context) -> dict[str, Any]:
    given = dict(arg.split("=", 1) for arg in ctx.args if "=" in arg)
    if not given or set(given) - set(CAPS):
        example = ctx.surface.example("server caps max_new_tokens=64 samples=2")
        raise InvalidRequest(f"Give caps as {example}.")
    return {k: ctx.number(k, args=[v]) if v else None for k, v in given.items()}


async def server_caps(ctx: Context) -> str:
    """Options: `max_new_tokens`, `samples`: each one given is set (None removes that cap)."""
    return await _set(ctx, **{f"{k}_cap": v for k, v in ctx.options.items() if k in CAPS})


def _defaults(ctx: Context) -> dict[str, Any]:
    if ctx.args == ["none"]:
        return {}
    given = dict(arg.split("=", 1) for arg in ctx.args if "=" in arg)
    if not given or set(given) - set(DEFAULTS):
        example = ctx.surface.example("server defaults temperature=0.8 max_new_tokens=64")
        raise InvalidRequest(f"Give defaults as {example}, or `none`.")
    try:
        return {k: DEFAULTS[k](v) for k, v in given.items()}
    except ValueError:
        raise InvalidRequest("temperature is a number and max_new_tokens a whole number.") from None


async def server_defaults(ctx: Context) -> str:
    """Options: `temperature`, `max_new_tokens` (for /generate options left out); the ones
    given replace the server's defaults (none: cleared)."""
    values = {k: v for k, v in ctx.options.items() if k in DEFAULTS and v is not None}
    return await _set(ctx, defaults=values)


def _enabled(ctx: Context) -> dict[str, Any]:
    if ctx.args not in (["on"], ["off"]):
        raise InvalidRequest(f"Say {ctx.surface.example('server training on')} or `off`.")
    return {"enabled": ctx.args == ["on"]}


async def server_training(ctx: Context) -> str:
    """Options: `enabled`: whether this server's ratings may become training data."""
    return await _set(ctx, ratings_train=ctx.options["enabled"])


def _terms(ctx: Context) -> dict[str, Any]:
    text = ctx.rest.strip()
    if not text:
        example = ctx.surface.example("server blocklist spoiler, re:sp[o0]iler")
        raise InvalidRequest(f"Give comma-separated terms, or `none`: {example}.")
    return {"terms": () if text.lower() in CLEARED else tuple(text.split(","))}


async def server_blocklist(ctx: Context) -> str:
    """Options: `terms` moderation refuses here, on top of the bot's own list."""
    return await _set(ctx, blocklist=tuple(ctx.options["terms"]))


def _template(ctx: Context) -> dict[str, Any]:
    """`server template [#channel] TEXT` with {prompt} once, or `none`: the text line breaks
    and all (a template is often `Q: {prompt}\\nA:`)."""
    text, channel = ctx.rest.strip(), ""
    leading = LEADING_WORD.match(ctx.rest)
    if leading and leading[1].startswith(("<#", "#")):
        mention = MENTION.fullmatch(leading[1])
        ids = [mention[1]] if mention else ctx.surface.channel_ids(leading[1])
        if ids:
            channel, text = ids[0], leading[2].strip()
    if not text:
        example = ctx.surface.example("server template #stories Q: {prompt} A:")
        raise InvalidRequest(f"Give the template, with {{prompt}} once: {example}, or `none`.")
    return {"text": None if text.lower() in CLEARED else text, "channel": channel}


async def server_template(ctx: Context) -> str:
    """Options: `text` (None clears it) and `channel` (an id; "" the whole server)."""
    record = await ctx.services.servers.get(ctx.actor.platform, ctx.server_id)
    place = ctx.options.get("channel") or ""
    return await _set(ctx, templates={**record.templates, place: ctx.options["text"]})


def _roles(ctx: Context) -> dict[str, Any]:
    if not ctx.args:
        raise InvalidRequest(
            f"Name the roles, or `none`: {ctx.surface.example('server roles 42')}."
        )
    return {"roles": [] if ctx.args == ["none"] else ctx.args}


async def server_roles(ctx: Context) -> str:
    """Options: `roles` (ids) whose holders administer this server, besides its own admins."""
    return await _set(ctx, admin_role_ids=ctx.options["roles"])


async def server_reports(ctx: Context) -> str:
    rows = await ctx.services.servers.reported(ctx.actor.platform, ctx.server_id)
    return ctx.render.reported(rows)


def _generation(ctx: Context) -> dict[str, Any]:
    return {"generation": ctx.number("ID")}


async def server_keep(ctx: Context) -> str:
    """Options: `generation`, a hidden output to show again (its reports cleared)."""
    generation = ctx.options["generation"]
    user, platform = ctx.actor.user_id, ctx.actor.platform
    await ctx.services.servers.keep_reported(user, platform, ctx.server_id, generation)
    return ctx.render.kept(generation)


async def server_delete(ctx: Context) -> str:
    """Options: `generation`, an output made here: its text, ratings and training use go,
    and the platform deletes its message (`ctx.unpublish`)."""
    generation = ctx.options["generation"]
    user, platform = ctx.actor.user_id, ctx.actor.platform
    where = await ctx.services.servers.delete_generation(user, platform, ctx.server_id, generation)
    channel_id, message_id = where
    posted = bool(channel_id and message_id)
    if channel_id and message_id and ctx.unpublish is not None:
        await ctx.unpublish(channel_id, message_id)
    return ctx.render.deleted(generation, message_left=posted and ctx.unpublish is None)


async def _set(ctx: Context, **changes: Any) -> str:
    record = await ctx.services.servers.update(
        ctx.actor.user_id, ctx.actor.platform, ctx.server_id, **changes
    )
    return ctx.render.server_settings(record, saved=True)


COMMANDS = (
    Command(("server", "show"), "server show", server_show),
    Command(("server", "channels"), "server channels #a #b|all", server_channels, _channels),
    Command(("server", "cooldown"), "server cooldown N", server_cooldown, _seconds),
    Command(("server", "caps"), "server caps max_new_tokens=N samples=N", server_caps, _caps),
    Command(
        ("server", "defaults"),
        "server defaults temperature=T max_new_tokens=N|none",
        server_defaults,
        _defaults,
    ),
    Command(("server", "training"), "server training on|off", server_training, _enabled),
    Command(("server", "blocklist"), "server blocklist TERM, TERM|none", server_blocklist, _terms),
    Command(
        ("server", "template"),
        "server template [#channel] TEXT with {prompt}|none",
        server_template,
        _template,
    ),
    Command(("server", "roles"), "server roles ROLE_ID ...|none", server_roles, _roles),
    Command(("server", "reports"), "server reports", server_reports),
    Command(("server", "keep"), "server keep ID", server_keep, _generation),
    Command(("server", "delete"), "server delete ID", server_delete, _generation),
)
