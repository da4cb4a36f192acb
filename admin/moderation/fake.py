"""The moderator double, beside its seam (`base.py`); part of the plugin API
(`bot.plugin_api.FakeModerator`), so it is not among `admin.moderation`'s public names."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from admin.moderation.base import Verdict
from admin.moderation.terms import Blocklist

Judge = Callable[[str, Sequence[str]], Verdict]


class FakeModerator:
    """Answers `judge(text, extra_terms)`: the test says what is flagged. Without a judge it
    flags texts containing one of `terms` (or a server's `extra_terms`). Remembers what it was
    asked in `checked`, so tests can check that a text was screened."""

    def __init__(self, terms: Sequence[str] = ("badword",), judge: Judge | None = None) -> None:
        self.judge = judge or Blocklist(terms).verdict
        self.checked: list[str] = []

    async def check(self, text: str, extra_terms: Sequence[str] = ()) -> Verdict:
        self.checked.append(text)
        return self.judge(text, extra_terms)
