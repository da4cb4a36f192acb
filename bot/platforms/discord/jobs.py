"""Bookkeeping around generations: in-flight tracking for shutdown, cooldowns, error sentences."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine, Hashable
from typing import Any, TypeVar

from bot.params import InvalidRequest
from bot.platforms.discord import render
from model.backends.base import BackendError, Busy

log = logging.getLogger(__name__)

T = TypeVar("T")

COOLDOWN_PRUNE_AT = 10_000  # forget expired cooldowns once this many users are remembered
CANCEL_WAIT_S = 10.0  # after cancelling, how long stop() waits for the goodbye messages


class ShuttingDown(Exception):
    """The bot is stopping; the generation was stopped on purpose."""


class InFlight:
    """The generations being served, so shutdown can let them finish or stop them politely."""

    def __init__(self) -> None:
        self.closing = False
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` as a tracked task; raises `ShuttingDown` if `drain()` had to stop it."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and self.closing and (current is None or not current.cancelling()):
                raise ShuttingDown() from None
            task.cancel()
            raise

    async def drain(self, grace_s: float) -> int:
        """Stop accepting; wait up to `grace_s` for running work, then cancel the rest.

        Returns how many were cancelled. Waits for their goodbye messages too (bounded)."""
        self.closing = True
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_s)
        left = set(self._tasks)
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left, timeout=CANCEL_WAIT_S)
        return len(left)


class UserCooldown:
    """At most one request per `seconds` per key (a user id); 0 seconds turns it off."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last: dict[Hashable, float] = {}

    def hit(self, key: Hashable) -> float | None:
        """Record a request; returns the seconds to wait instead when it is too soon."""
        if self.seconds <= 0:
            return None
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.seconds:
            return self.seconds - (now - last)
        self._last[key] = now
        if len(self._last) > COOLDOWN_PRUNE_AT:
            self._last = {k: t for k, t in self._last.items() if now - t < self.seconds}
        return None


def describe_error(error: BaseException, what: str = "request") -> str:
    """The sentence a user sees for `error`; unexpected errors are logged with an incident id."""
    if isinstance(error, ShuttingDown):
        return render.SHUTTING_DOWN
    if isinstance(error, Busy):
        return render.busy(str(error), error.retry_after_s)
    if isinstance(error, InvalidRequest | BackendError):
        return f"⚠️ {error}"
    incident = uuid.uuid4().hex[:8]
    log.error("discord %s failed, incident %s", what, incident, exc_info=error)
    return render.internal_error(incident)
