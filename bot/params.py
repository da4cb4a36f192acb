"""Validation of what users send: the prompt and the sampling parameters.

Platforms pass raw values (strings from Slack, numbers from Discord, form fields from the web);
this module turns them into `SamplingParams` or raises `InvalidRequest` with a sentence that
says what is allowed. Platform-side limits (Discord's `app_commands.Range`, slider bounds)
mirror `LIMITS`, but this check always runs server-side too.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from model.backends.base import SamplingParams

MAX_PROMPT_CHARS = 2000
MAX_SEED = 2**63 - 1

# name: (type, low, high, low_inclusive, description for help texts)
LIMITS: dict[str, tuple[type, float, float, bool, str]] = {
    "temperature": (float, 0.0, 2.0, True, "randomness, 0 = always the most likely word"),
    "top_k": (int, 0, 1000, True, "sample from the k most likely tokens, 0 = no limit"),
    "top_p": (float, 0.0, 1.0, False, "sample from the smallest set with this probability"),
    "max_new_tokens": (int, 1, 512, True, "length of the answer in tokens"),
    "repetition_penalty": (float, 1.0, 2.0, True, "discourage repeating, 1 = off"),
    "samples": (int, 1, 4, True, "how many answers to write"),
    "seed": (int, 0, MAX_SEED, True, "fix it to get the same answer again"),
}
DEFAULTS = asdict(SamplingParams())


# C0/C1 controls and DEL, except tab and newline: invisible in chat, rejected by PostgreSQL (NUL)
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class InvalidRequest(ValueError):
    """The user's input is not acceptable; the message is safe to show them."""


def strip_control(text: str) -> str:
    """`text` without control characters (NUL, escape, ...); newlines and tabs stay."""
    return CONTROL_CHARS.sub("", text)


def validate_prompt(prompt: str | None) -> str:
    raw = prompt or ""
    text = strip_control(raw).strip()
    if not text and raw.strip():
        raise InvalidRequest("The prompt has only control characters: write some text.")
    if not text:
        raise InvalidRequest("The prompt is empty: write the start of the text to continue.")
    if len(text) > MAX_PROMPT_CHARS:
        raise InvalidRequest(
            f"The prompt is {len(text)} characters long; the limit is {MAX_PROMPT_CHARS}."
        )
    return text


def _convert(name: str, value: Any) -> float | int:
    kind, low, high, low_inclusive, _ = LIMITS[name]
    shown_low, shown_high = (f"{low:g}", f"{high:g}") if kind is float else (int(low), int(high))
    allowed = (
        f"{name} must be {'an integer' if kind is int else 'a number'} from {shown_low}"
        f"{'' if low_inclusive else ' (exclusive)'} to {shown_high}"
    )
    try:
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            number: float | int = int(str(value).strip()) if isinstance(value, str) else int(value)
        else:
            number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidRequest(f"{allowed}; got {value!r}.") from None
    too_low = number < low if low_inclusive else number <= low
    if too_low or number > high or number != number:  # NaN compares unequal to itself
        raise InvalidRequest(f"{allowed}; got {value!r}.")
    return number


def parse_params(raw: Mapping[str, Any] | None = None) -> SamplingParams:
    """Validated parameters; missing ones take defaults, a missing seed is drawn at random."""
    raw = {k: v for k, v in (raw or {}).items() if v is not None and v != ""}
    unknown = sorted(set(raw) - set(LIMITS))
    if unknown:
        raise InvalidRequest(f"Unknown option {', '.join(unknown)}: use {', '.join(LIMITS)}.")
    values = {name: _convert(name, value) for name, value in raw.items()}
    values.setdefault("seed", secrets.randbelow(MAX_SEED + 1))
    return SamplingParams(**{**DEFAULTS, **values})
