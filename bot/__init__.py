"""gpt2bot's chat side: use-cases, platform plugins, CLI and the composition root."""
