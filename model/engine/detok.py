"""Incremental detokenization: turn a growing list of BPE ids into text chunks.

Byte-level BPE splits multi-byte characters (é, emoji, CJK) across tokens; decoding a partial
character gives U+FFFD. A chunk is released only once the text decodes cleanly, and it is taken
as the difference between two decodes of a short window, so the work per token stays constant
and the chunks concatenate exactly to the decode of all ids.
"""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"


def decode(tokenizer: Any, ids: list[int]) -> str:
    """Decode without the special tokens and without clean-up (which would change spacing)."""
    return str(tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))


class IncrementalDetokenizer:
    """Feeds ids one at a time and returns the newly complete text each time."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = 0  # start of the window: text before it was already released
        self._read = 0  # ids before this were released as text

    def push(self, token_id: int) -> str:
        """Add one id; return the text it completes ("" while a character is unfinished)."""
        self.ids.append(token_id)
        return self._release(final=False)

    def flush(self) -> str:
        """Whatever is left at the end (an unfinished character decodes as U+FFFD)."""
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        before = decode(self._tokenizer, self.ids[self._prefix : self._read])
        after = decode(self._tokenizer, self.ids[self._prefix :])
        if len(after) <= len(before) or (after.endswith(REPLACEMENT) and not final):
            return ""
        self._prefix, self._read = self._read, len(self.ids)
        return after[len(before) :]

    def text(self) -> str:
        return decode(self._tokenizer, self.ids)
