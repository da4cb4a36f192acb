"""The chat use-cases' settings (`ChatService`), read from the environment at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChatConfig:
    # a member's wait between /generate, 🔁 and ⏩ on every platform (0 = off); a server's
    # admins can set their own (`/admin server cooldown`)
    cooldown_s: float = field(
        default=5.0, metadata={"env": "COOLDOWN_SECONDS", "min": 0.0, "max": 3600.0}
    )
    # streamed text is published only once moderation passed it and this many characters
    # after it (a word being spelled out is never shown half-way)
    moderation_window_chars: int = field(
        default=32, metadata={"env": "MODERATION_WINDOW_CHARS", "min": 1, "max": 2000}
    )
    # 🚩 reports from this many members hide an output until an admin reviews it
    reports_to_hide: int = field(
        default=3, metadata={"env": "REPORTS_TO_HIDE", "min": 1, "max": 1000}
    )
    # a story thread (`/generate thread:True`, or a Slack output's thread) goes quiet after
    # this many continuations, or after this long without one
    story_max_turns: int = field(
        default=50, metadata={"env": "STORY_THREAD_MAX_TURNS", "min": 1, "max": 1000}
    )
    story_idle_minutes: float = field(
        default=60.0, metadata={"env": "STORY_THREAD_IDLE_MINUTES", "min": 1.0, "max": 10080.0}
    )
