"""Fair use, the same on every platform: a per-member cooldown, a server's channels and caps,
and rate limits for things a script could repeat (new browser ids per address, admin logins)
built on the `limits` library.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from bot.params import InvalidRequest
from model.backends.base import SamplingParams
from storage import ServerSettingsRecord

COOLDOWN_PRUNE_AT = 10_000  # forget expired cooldowns once this many members are remembered


class Cooldown:
    """At most one request per `seconds` per key (a member); 0 seconds turns it off. The
    seconds may differ per call (a server's own cooldown)."""

    def __init__(self) -> None:
        self._last: dict[Hashable, float] = {}

    def hit(self, key: Hashable, seconds: float) -> float | None:
        """Record a request; returns the seconds to wait instead when it is too soon."""
        if seconds <= 0:
            return None
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < seconds:
            return seconds - (now - last)
        self._last[key] = now
        if len(self._last) > COOLDOWN_PRUNE_AT:
            self._last = {k: t for k, t in self._last.items() if now - t < seconds}
        return None


class RateLimit:
    """`limit` (e.g. "10/minute") per key, over a moving window, in memory."""

    def __init__(self, limit: str) -> None:
        self.item: RateLimitItem = parse(limit)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, key: str) -> float | None:
        """Count one attempt; returns the seconds until the next is allowed when over."""
        if self._limiter.hit(self.item, key):
            return None
        reset_at, _ = self._limiter.get_window_stats(self.item, key)
        return max(1.0, reset_at - time.time())

    def wait(self, key: str) -> float | None:
        """Without counting: the seconds until the next attempt is allowed, when over."""
        if self._limiter.test(self.item, key):
            return None
        reset_at, _ = self._limiter.get_window_stats(self.item, key)
        return max(1.0, reset_at - time.time())


class CoolingDown(InvalidRequest):
    """Too soon after the member's last request; the message says how long to wait."""

    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        seconds = max(1, math.ceil(retry_after_s))
        super().__init__(f"Slow down a little: you can ask again in {seconds} s.")


class NotAllowedHere(InvalidRequest):
    """The server allows generating only in some channels; the message names them."""

    def __init__(self, channels: tuple[str, ...]) -> None:
        self.channels = channels
        names = ", ".join(f"<#{c}>" for c in channels)
        super().__init__(f"This server uses gpt2bot only in {names}: ask there.")


def within_caps(params: SamplingParams, rules: ServerSettingsRecord) -> SamplingParams:
    """Refuse what exceeds the server's caps, saying the cap."""
    tokens, samples = rules.max_new_tokens_cap, rules.samples_cap
    if tokens is not None and params.max_new_tokens > tokens:
        raise InvalidRequest(f"This server allows at most {tokens} new tokens per answer.")
    if samples is not None and params.samples > samples:
        raise InvalidRequest(f"This server allows at most {samples} samples per request.")
    return params
