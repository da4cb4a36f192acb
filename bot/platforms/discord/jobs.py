"""Bookkeeping around generations: in-flight tracking for shutdown, error sentences."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import discord

from admin.errors import AdminError
from bot.fairuse import CoolingDown
from bot.params import InvalidRequest
from bot.platforms.discord import render
from model.backends.base import BackendError, Busy, Cancelled

log = logging.getLogger(__name__)

CANCEL_WAIT_S = 10.0  # after cancelling, how long stop() waits for the goodbye messages
UNKNOWN_INTERACTION = 10062  # Discord's code for an interaction it no longer knows


class ShuttingDown(Exception):
    """The bot is stopping; the generation was stopped on purpose."""


class InFlight:
    """The generations being served, so shutdown can let them finish or stop them politely."""

    def __init__(self) -> None:
        self.closing = False
        self._work: dict[asyncio.Task[Any], asyncio.Event] = {}  # work -> its answer was sent

    def __len__(self) -> int:
        return len(self._work)

    async def run(
        self, work: Coroutine[Any, Any, None], on_error: Callable[[Exception], Awaitable[None]]
    ) -> None:
        """Run `work` as a tracked task; any failure (`ShuttingDown` when `drain()` stopped
        it) goes to `on_error`, which tells the user. `drain()` waits for that too."""
        task = asyncio.ensure_future(work)
        answered = asyncio.Event()
        self._work[task] = answered
        try:
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not (task.cancelled() and self.closing and not _cancelling(current)):
                    task.cancel()
                    raise
                await on_error(ShuttingDown())
            except Exception as error:
                await on_error(error)
        finally:
            answered.set()
            del self._work[task]

    async def drain(self, grace_s: float) -> int:
        """Stop accepting; wait up to `grace_s` for running work, then cancel the rest and
        wait (bounded) for their goodbye messages. Returns how many were cancelled."""
        self.closing = True
        if self._work:
            await asyncio.wait(set(self._work), timeout=grace_s)
        left = {task: answered for task, answered in self._work.items() if not task.done()}
        for task in left:
            task.cancel()
        answers = [asyncio.ensure_future(event.wait()) for event in self._work.values()]
        if answers:
            await asyncio.wait(answers, timeout=CANCEL_WAIT_S)
            for waiter in answers:
                waiter.cancel()
        return len(left)


def _cancelling(task: asyncio.Task[Any] | None) -> bool:
    return task is not None and task.cancelling() > 0


async def close_stream(stream: AsyncIterator[Any]) -> None:
    """Close a use-case stream now, so the backend stops work nobody will read."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


def expired(error: BaseException) -> bool:
    """Discord forgot the interaction: it was not acknowledged within 3 s, the member saw "The
    application did not respond", and nothing can be sent to it any more."""
    return isinstance(error, discord.NotFound) and error.code == UNKNOWN_INTERACTION


def log_expired(interaction: discord.Interaction, what: str) -> None:
    """One line for an interaction Discord forgot (no traceback: there is nothing to fix in
    the code, and a burst would fill the log)."""
    log.warning(
        "%s from user %s was not acknowledged within Discord's 3 s: the member saw "
        "'The application did not respond'",
        what,
        interaction.user.id,
    )


def describe_error(error: BaseException, what: str = "request") -> str:
    """The sentence a user sees for `error`; unexpected errors are logged with an incident id."""
    if isinstance(error, ShuttingDown):
        return render.SHUTTING_DOWN
    if isinstance(error, Busy):
        return render.busy(str(error), error.retry_after_s)
    if isinstance(error, CoolingDown):
        return render.cooldown(error.retry_after_s)
    if isinstance(error, Cancelled):
        return render.STOPPED
    if isinstance(error, InvalidRequest | BackendError):
        return f"⚠️ {error}"
    if isinstance(error, AdminError):  # a refusal written for the admin who asked
        return f"⚠️ {error.sentence(render.HOW_TO_FORCE)}"
    incident = uuid.uuid4().hex[:8]
    log.error("discord %s failed, incident %s", what, incident, exc_info=error)
    return render.internal_error(incident)
