"""A server's own settings, for its admins: `server show | channels | cooldown | caps |
training | template` (where `/generate` is answered, a member's wait, caps, whether ratings
train, the prompt template of the server or of one channel)."""

from __future__ import annotations

import re
from typing import Any

from bot.admin_commands.context import Command, Context
from bot.platforms.server_text import settings_facts
from storage import ServerSettingsRecord

CAPS = ("max_new_tokens", "samples")
# `server template [#channel] TEXT`: a first word that mentions a channel, as chats write one
# (`<#ID>`, `<#ID|name>`) or as a surface reads one (`#name`)
LEADING_WORD = re.compile(r"\s*(\S+)\s?(.*)", re.DOTALL)
MENTION = re.compile(r"<#([^|>]+)(?:\|[^>]*)?>")


async def server_show(ctx: Context) -> str:
    record = await ctx.services.servers.get(ctx.actor.platform, ctx.server_id)
    return _text(ctx, record)


async def server_channels(ctx: Context) -> str:
    if not ctx.args:
        example = ctx.surface.example("server channels #bots #playground")
        return f"Name the channels, or `all`: {example}."
    ids = [] if ctx.args == ["all"] else ctx.surface.channel_ids(" ".join(ctx.args))
    return await _set(ctx, allowed_channels=ids)


async def server_cooldown(ctx: Context) -> str:
    try:
        seconds = float(ctx.args[0]) if len(ctx.args) == 1 else None
    except ValueError:
        seconds = None
    if seconds is None:
        return f"Give the seconds: {ctx.surface.example('server cooldown 10')} (0 turns it off)."
    return await _set(ctx, cooldown_s=seconds)


async def server_caps(ctx: Context) -> str:
    given = dict(arg.split("=", 1) for arg in ctx.args if "=" in arg)
    if not given or set(given) - set(CAPS):
        example = ctx.surface.example("server caps max_new_tokens=64 samples=2")
        return f"Give caps as {example}."
    changes = {f"{k}_cap": ctx.number(k, args=[v]) if v else None for k, v in given.items()}
    return await _set(ctx, **changes)


async def server_training(ctx: Context) -> str:
    if ctx.args not in (["on"], ["off"]):
        return f"Say {ctx.surface.example('server training on')} or `off`."
    return await _set(ctx, ratings_train=ctx.args == ["on"])


async def server_template(ctx: Context) -> str:
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
        return f"Give the template, with {{prompt}} once: {example}, or `none`."
    record = await ctx.services.servers.get(ctx.actor.platform, ctx.server_id)
    chosen = None if text.lower() in ("none", "off") else text
    return await _set(ctx, templates={**record.templates, channel: chosen})


async def _set(ctx: Context, **changes: Any) -> str:
    record = await ctx.services.servers.update(
        ctx.actor.user_id, ctx.actor.platform, ctx.server_id, **changes
    )
    return "Saved.\n" + _text(ctx, record)


def _text(ctx: Context, record: ServerSettingsRecord) -> str:
    facts = "; ".join(f"{label}: {value}" for label, value in settings_facts(record, roles=False))
    return f"This {ctx.surface.server_noun}: {facts}."


COMMANDS = (
    Command(("server", "show"), "server show", server_show),
    Command(("server", "channels"), "server channels #a #b|all", server_channels),
    Command(("server", "cooldown"), "server cooldown N", server_cooldown),
    Command(("server", "caps"), "server caps max_new_tokens=N samples=N", server_caps),
    Command(("server", "training"), "server training on|off", server_training),
    Command(
        ("server", "template"),
        "server template [#channel] TEXT with {prompt}|none",
        server_template,
    ),
)
