"""The `slack` platform plugin: `/generate`, reactions and `/gpt2bot-admin` on slack-bolt.

Entry point `gpt2bot.platforms: slack = bot.platforms.slack:create`.
"""

from bot.platforms.slack.config import SlackConfig
from bot.platforms.slack.platform import EVENTS_PATH, SlackPlatform, create, web_client

__all__ = ["EVENTS_PATH", "SlackConfig", "SlackPlatform", "create", "web_client"]
