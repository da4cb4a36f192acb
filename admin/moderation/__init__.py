"""Moderation: the seam (`base.py`), the offline default (`default.py`) and fakes (`fake.py`).

Prompts, outputs and every text that enters the curated set go through one `Moderator`, built
by the composition root from the `gpt2bot.moderators` entry point named by `MODERATOR`.
"""

from admin.moderation.base import ModerationConfig, Moderator, Verdict
from admin.moderation.fake import AllowAll, FakeModerator

__all__ = ["AllowAll", "FakeModerator", "ModerationConfig", "Moderator", "Verdict"]
