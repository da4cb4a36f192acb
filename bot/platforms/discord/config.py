"""The Discord platform's settings (read from the environment when Discord starts)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

DM_POLICIES = ("allow", "deny", "admins")
TOKEN_HELP = (
    "copy the bot token from https://discord.com/developers/applications → your app → Bot → "
    "Reset Token, and set DISCORD_TOKEN in .env"
)

SHARDS_FIX = (
    "Use auto (Discord recommends the count), a count such as 4 (all shards here), or the "
    "shards this process runs and the total, such as 0,1/4 or 2-3/4."
)


def shard_options(value: str | None) -> dict[str, Any] | None:
    """`DISCORD_SHARDS` as `AutoShardedClient` arguments; None: an unsharded client."""
    if value is None:
        return None
    if value == "auto":
        return {}
    if value.isdigit():
        return {"shard_count": int(value)}
    match = re.fullmatch(r"([\d,\s-]+)/(\d+)", value)
    if match is None:
        raise ValueError(f"{value!r} is not a shard setting", SHARDS_FIX)
    count, ids = int(match.group(2)), set[int]()
    for part in match.group(1).replace(" ", "").split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"{value!r} is not a shard setting", SHARDS_FIX)
        ids.update(range(int(low), int(high or low) + 1))
    if not ids or max(ids) >= count:
        raise ValueError(f"{value!r} names shards outside 0..{count - 1}", SHARDS_FIX)
    return {"shard_count": count, "shard_ids": sorted(ids)}


def check_shards(value: str) -> None:
    if value.isdigit() and int(value) < 1:
        raise ValueError(f"{value!r} is not a shard count", SHARDS_FIX)
    shard_options(value)


@dataclass(frozen=True)
class DiscordConfig:
    # bot token from the Discord developer portal
    token: str | None = field(default=None, metadata={"env": "DISCORD_TOKEN"})
    # REST base URL override (a proxy or a test server)
    api_base: str | None = field(
        default=None, metadata={"env": "DISCORD_API_BASE", "url_schemes": ("http", "https")}
    )
    # gateway websocket URL override
    gateway_url: str | None = field(
        default=None, metadata={"env": "DISCORD_GATEWAY_URL", "url_schemes": ("ws", "wss")}
    )
    # sync commands to these guilds instantly
    guild_ids: tuple[int, ...] = field(default=(), metadata={"env": "DISCORD_GUILD_IDS"})
    # streaming: edit the answer at most this often (rate limits)
    edit_interval_s: float = field(
        default=1.0,
        metadata={"env": "DISCORD_EDIT_INTERVAL_SECONDS", "min": 0.1, "max": 60.0},
    )
    # unset: one connection; auto | N | ids/N: AutoShardedClient (2,500+ servers)
    shards: str | None = field(
        default=None, metadata={"env": "DISCORD_SHARDS", "lower": True, "check": check_shards}
    )
    # /generate, mentions and replies in direct messages: allow | deny | admins
    dm_policy: str = field(
        default="allow", metadata={"env": "DISCORD_DM_POLICY", "choices": DM_POLICIES}
    )
    # ask for the privileged message-content intent (turn it on in the developer portal too):
    # story threads then go on without mentioning the bot
    message_content: bool = field(default=False, metadata={"env": "DISCORD_MESSAGE_CONTENT"})

    def check(self) -> None:
        """What Discord cannot start without (checked before the model loads)."""
        if not self.token:
            raise ValueError(
                "DISCORD_TOKEN", "is not set", f"{TOKEN_HELP[0].upper()}{TOKEN_HELP[1:]}."
            )
