"""The `discord` platform plugin: slash commands, streamed answers and reaction ratings.

Entry point `gpt2bot.platforms: discord = bot.platforms.discord:create`.
"""

from bot.platforms.discord.config import DiscordConfig
from bot.platforms.discord.platform import DiscordPlatform, DiscordSetupError, create

__all__ = ["DiscordConfig", "DiscordPlatform", "DiscordSetupError", "create"]
