"""nolinks: an example moderator that flags texts carrying a link (spam's favourite cargo),
on top of a server's own blocklist terms. gpt2bot screens prompts, streamed outputs and
curated texts through the one moderator named by `MODERATOR`:

    MODERATOR=nolinks gpt2bot run
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot import plugin_api as gpt2bot

gpt2bot.require_api(1)

LINK = re.compile(r"\b(?:https?://|www\.)\S+|\b[\w-]+\.(?:com|net|org|io|ru|xyz)\b", re.I)


class NoLinks:
    """Implements `gpt2bot.Moderator`. Verdict reasons are phrases shown to the member."""

    async def check(self, text: str, extra_terms: Sequence[str] = ()) -> gpt2bot.Verdict:
        if LINK.search(text):
            return gpt2bot.Verdict(True, "contains a link")
        lowered = text.lower()
        if any(term.lower() in lowered for term in extra_terms if not term.startswith("re:")):
            return gpt2bot.Verdict(True, "contains a term this server blocks")
        return gpt2bot.PASSED


def create(config: gpt2bot.ModerationConfig) -> NoLinks:
    """The `gpt2bot.moderators` entry point."""
    return NoLinks()
