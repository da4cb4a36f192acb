"""Blocklists: words and phrases (matched whole, ignoring case and spacing tricks) and `re:`
patterns. The bundled list is our own, short on purpose: the classifier catches the long tail,
the list catches what it is weak at (slurs in isolation, threats, self-harm goading)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from admin.moderation.base import PASSED, Verdict

BLOCKED_REASON = "contains a blocked term"
# ours, written for this project; operators and servers add their own
BUNDLED = (
    "re:f+u+c+k+\\w*",
    "re:c+u+n+t+s?",
    "re:n+[i1]+g+(?:a|er|ers|as|gers?)",
    "re:f+a+g+(?:s|gots?)?",
    "re:retard(?:s|ed)?",
    "re:wh[o0]res?",
    "re:sluts?",
    "kill yourself",
    "kys",
    "heil hitler",
    "gas the",
)
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2060\ufeff\u00ad]")  # zero-width and soft hyphen


def fold(text: str) -> str:
    """Case-folded NFKC text without invisible characters: "ＦＵＣＫ" and "f\u200buck" match."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).casefold()


def compile_terms(terms: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for all terms; plain terms match as whole words, spaces as any spacing."""
    parts = []
    for term in terms:
        term = term.strip()
        if not term:
            continue
        if term.startswith("re:"):
            parts.append(term[3:])
        else:
            words = [re.escape(w) for w in fold(term).split()]
            parts.append(r"\s+".join(words))
    if not parts:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(f"(?:{p})" for p in parts) + r")(?!\w)")


class Blocklist:
    """Terms compiled once; a server's additions are compiled on demand (and cached)."""

    def __init__(self, terms: Sequence[str]) -> None:
        self._pattern = compile_terms(terms)
        self._extra: dict[tuple[str, ...], re.Pattern[str] | None] = {}

    def verdict(self, text: str, extra_terms: Sequence[str] = ()) -> Verdict:
        normal = fold(text)
        patterns = [self._pattern, self._extra_pattern(tuple(extra_terms))]
        if any(p is not None and p.search(normal) for p in patterns):
            return Verdict(True, BLOCKED_REASON, 1.0)
        return PASSED

    def _extra_pattern(self, terms: tuple[str, ...]) -> re.Pattern[str] | None:
        if terms not in self._extra:
            if len(self._extra) > 1000:  # servers change their lists rarely; bound the cache
                self._extra.clear()
            self._extra[terms] = compile_terms(terms)
        return self._extra[terms]
