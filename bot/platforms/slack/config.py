"""The Slack platform's settings (read from the environment when Slack starts)."""

from __future__ import annotations

from dataclasses import dataclass, field


def check_app_token(token: str) -> None:
    if not token.startswith("xapp-"):
        raise ValueError("does not start with 'xapp-'", "Use the app-level token.")


@dataclass(frozen=True)
class SlackConfig:
    bot_token: str | None = field(default=None, metadata={"env": "SLACK_BOT_TOKEN"})  # xoxb-...
    # verifies HTTP requests from Slack
    signing_secret: str | None = field(default=None, metadata={"env": "SLACK_SIGNING_SECRET"})
    # xapp-...: Socket Mode instead of HTTP
    app_token: str | None = field(
        default=None, metadata={"env": "SLACK_APP_TOKEN", "check": check_app_token}
    )
    # Web API base URL override
    api_url: str | None = field(
        default=None, metadata={"env": "SLACK_API_URL", "url_schemes": ("http", "https")}
    )

    def check(self) -> None:
        """What Slack cannot start without (checked before the model loads)."""
        if not self.bot_token:
            raise ValueError(
                "SLACK_BOT_TOKEN",
                "missing",
                "Copy the Bot User OAuth Token (xoxb-...) from your Slack app's OAuth & "
                "Permissions page into .env.",
            )
        if not self.app_token and not self.signing_secret:
            raise ValueError(
                "SLACK_SIGNING_SECRET",
                "missing (needed to verify Slack's HTTP requests)",
                "Copy it from your Slack app's Basic Information page, or set SLACK_APP_TOKEN "
                "for Socket Mode.",
            )
