"""Moderation: the seam (`base.py`, with `AllowAll`), the offline default (`default.py`) and the
test double (`fake.py`: `FakeModerator`, public in the plugin API, `bot.plugin_api`, not here).

Prompts, outputs and every text that enters the curated set go through one `Moderator`, built
by the composition root from the `gpt2bot.moderators` entry point named by `MODERATOR`.
`AllowAll` is moderation turned off (the poisoning benchmark's "defences off").
"""

from admin.moderation.base import AllowAll, ModerationConfig, Moderator, Verdict

__all__ = ["AllowAll", "ModerationConfig", "Moderator", "Verdict"]
