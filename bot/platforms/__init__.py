"""Platform plugins (`gpt2bot.platforms` entry points): discord, slack, web."""
