"""The `discord` platform plugin: slash commands, streamed answers and reaction ratings.

Entry point `gpt2bot.platforms: discord = bot.platforms.discord:create`.
"""

from bot.platforms.discord.client import DiscordPlatform, DiscordSetupError, create

__all__ = ["DiscordPlatform", "DiscordSetupError", "create"]
