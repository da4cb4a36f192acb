"""Moderation in the chat: prompts refused with a sentence, outputs screened while they stream.

`StreamGate` holds back the newest `window` characters of a sample and shows text only once the
moderator has passed everything up to and including that window, so a word being spelled out
is never published half-way. While streaming it checks only what is new, from a window before
what it showed (a term across the edge is still seen), so a long output costs one pass, not one
pass per window. The final text is checked whole before the rest is shown; a flagged sample
shows nothing more, and its stored record is marked withheld.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from admin.moderation import Verdict
from bot.params import InvalidRequest
from storage import GenerationRecord

if TYPE_CHECKING:
    from bot.metrics import ChatObserver

log = logging.getLogger(__name__)

WITHHELD_TEXT = "[This output was withheld: it did not pass this bot's moderation.]"
HIDDEN_TEXT = "[This output was hidden after members reported it; admins will review it.]"

Check = Callable[[str], Awaitable[Verdict]]


class PromptRefused(InvalidRequest):
    """The prompt did not pass moderation; the message (shown privately) says why."""

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        super().__init__(
            f"I did not send that prompt: it {verdict.reason}. Rephrase it and try again."
        )


class StreamGate:
    """What of one sample's streamed text may be shown so far."""

    def __init__(self, check: Check, window: int) -> None:
        self._check, self._window = check, window
        self.text = ""  # everything decoded so far
        self.shown = 0  # how much of it was published
        self.verdict: Verdict | None = None  # set once the text was flagged

    async def feed(self, piece: str) -> str:
        """Add decoded text; returns the part that is now safe to publish (often "")."""
        self.text += piece
        if self.verdict is not None or len(self.text) - self.shown < 2 * self._window:
            return ""  # check in steps of about a window: not on every token
        verdict = await self._check(self.text[max(0, self.shown - self._window) :])
        if verdict.flagged:
            self.verdict = verdict
            return ""
        upto = len(self.text) - self._window
        out, self.shown = self.text[self.shown : upto], upto
        return out

    async def finish(self, final: str) -> tuple[Verdict, str]:
        """Check the whole output; returns its verdict and the rest to publish if it passed."""
        verdict = self.verdict or await self._check(final)
        self.verdict = verdict
        if verdict.flagged or not final.startswith(self.text[: self.shown]):
            return verdict, ""
        return verdict, final[self.shown :]


def shown(record: GenerationRecord) -> GenerationRecord:
    """The record as members may see it: a withheld or hidden output replaced by a sentence."""
    if record.flagged is not None:
        return replace(record, output=WITHHELD_TEXT)
    if record.hidden:
        return replace(record, output=HIDDEN_TEXT)
    return record


def report_withheld(
    observer: ChatObserver, request_id: str, records: list[GenerationRecord]
) -> None:
    """Count and log the samples of a request that moderation withheld."""
    reasons = [r.flagged for r in records if r.flagged is not None]
    for reason in reasons:
        observer.moderated("output_withheld", reason)
    if reasons:
        log.warning("generation %s: %d sample(s) withheld by moderation", request_id, len(reasons))
