"""Moderation: the seam (`base.py`), the offline default (`default.py`) and the test double
(`fake.py`, also in the plugin API: `bot.plugin_api.FakeModerator`).

Prompts, outputs and every text that enters the curated set go through one `Moderator`, built
by the composition root from the `gpt2bot.moderators` entry point named by `MODERATOR`.
`AllowAll` is moderation turned off (the poisoning benchmark's "defences off").
"""

from admin.moderation.base import ModerationConfig, Moderator, Verdict
from admin.moderation.fake import AllowAll

__all__ = ["AllowAll", "ModerationConfig", "Moderator", "Verdict"]
