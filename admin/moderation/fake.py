"""Moderators for tests and benchmarks: no classifier, no model to load."""

from __future__ import annotations

from collections.abc import Sequence

from admin.moderation.base import PASSED, Verdict
from admin.moderation.terms import Blocklist


class FakeModerator:
    """Flags texts containing one of `terms` (or a server's `extra_terms`); remembers what it
    was asked, so tests can check that a text was screened."""

    def __init__(self, terms: Sequence[str] = ("badword",)) -> None:
        self.blocklist = Blocklist(terms)
        self.checked: list[str] = []

    async def check(self, text: str, extra_terms: Sequence[str] = ()) -> Verdict:
        self.checked.append(text)
        return self.blocklist.verdict(text, extra_terms)


class AllowAll:
    """Passes everything: moderation turned off (the poisoning benchmark's "defences off")."""

    async def check(self, text: str, extra_terms: Sequence[str] = ()) -> Verdict:
        return PASSED
