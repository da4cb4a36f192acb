"""The Discord platform's settings (read from the environment when Discord starts)."""

from __future__ import annotations

from dataclasses import dataclass, field

DM_POLICIES = ("allow", "deny", "admins")
TOKEN_HELP = (
    "copy the bot token from https://discord.com/developers/applications → your app → Bot → "
    "Reset Token, and set DISCORD_TOKEN in .env"
)


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
    # /generate in direct messages: allow | deny | admins
    dm_policy: str = field(
        default="allow", metadata={"env": "DISCORD_DM_POLICY", "choices": DM_POLICIES}
    )

    def check(self) -> None:
        """What Discord cannot start without (checked before the model loads)."""
        if not self.token:
            raise ValueError(
                "DISCORD_TOKEN", "is not set", f"{TOKEN_HELP[0].upper()}{TOKEN_HELP[1:]}."
            )
