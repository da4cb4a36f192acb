"""The moderation seam: one question, "may this text be shown or trained on?".

A plugin (entry point group `gpt2bot.moderators`) is a callable `factory(config) -> Moderator`;
it may call a hosted moderation API, which is why `check` is async. A verdict's `reason` is a
phrase safe to show the member who wrote the text ("contains a blocked term").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ModerationConfig:
    # the `gpt2bot.moderators` plugin; `default` is offline (classifier + blocklist)
    plugin: str = field(
        default="default",
        metadata={"env": "MODERATOR", "help": "moderation plugin (entry point name)"},
    )
    # a text whose offensive-language probability reaches this is flagged (1 turns the
    # classifier off; the blocklist still applies)
    threshold: float = field(
        default=0.8, metadata={"env": "MODERATION_THRESHOLD", "min": 0.0, "max": 1.0}
    )
    # terms added to the bundled blocklist everywhere (comma-separated; `re:` starts a regex)
    blocklist: tuple[str, ...] = field(default=(), metadata={"env": "MODERATION_BLOCKLIST"})


@dataclass(frozen=True)
class Verdict:
    """The answer about one text."""

    flagged: bool
    reason: str = ""  # why it was flagged, as a phrase: "contains a blocked term"
    score: float = 0.0  # the classifier's probability, when there is one


PASSED = Verdict(False)


class Moderator(Protocol):
    """Screens prompts, outputs and curated texts."""

    async def check(self, text: str, extra_terms: Sequence[str] = ()) -> Verdict:
        """The verdict on `text`; `extra_terms` are a server's own blocklist additions (same
        syntax as `MODERATION_BLOCKLIST`). Never raises for ordinary text."""
        ...


class AllowAll:
    """Passes everything: moderation turned off (the poisoning benchmark's "defences off")."""

    async def check(self, text: str, extra_terms: Sequence[str] = ()) -> Verdict:
        return PASSED
