"""Story threads: a thread opened on an output, where each member message continues the story.

A story thread is known by its key, the platform message id of the output it was opened on
(Discord gives a thread started from a message that message's id; Slack threads hang off a
message's ts), so any process on the database recognizes one without extra state. The turns
of a thread are generations stored with the thread as their channel. Turns run one at a time
per thread, in the order members wrote them (an `asyncio.Lock` is first come, first served);
each turn is a reply to the thread's newest generation that members may see (a turn withheld
by moderation or hidden by reports is passed over, so it cannot stall the story), with the
cooldown, caps and moderation of every request. A thread goes quiet after
`STORY_THREAD_MAX_TURNS` turns or `STORY_THREAD_IDLE_MINUTES` without one.

The line is kept per process: one process receives a thread's messages (Discord shards split
servers, not channels; a Slack workspace is served by one process).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.chat import ChatService
from bot.chat_config import ChatConfig
from bot.params import InvalidRequest
from storage import Database, GenerationRecord, GenerationRepository, as_utc


class StoryEnded(InvalidRequest):
    """The thread went quiet; the sentence says why and how to start another."""


@dataclass(frozen=True)
class Turn:
    """The generation a member's message continues, and how many turns are left after it."""

    last: GenerationRecord
    left: int


@dataclass
class _Slot:
    """A thread's lock and how many turns hold it or wait for it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class StoryThreads:
    """Which threads are stories, and their turns one at a time."""

    def __init__(self, chat: ChatService, db: Database, config: ChatConfig) -> None:
        self.chat = chat
        self._db = db
        self._generations = GenerationRepository(db)
        self.max_turns = config.story_max_turns
        self.idle = timedelta(minutes=config.story_idle_minutes)
        self._locks: dict[tuple[str, str], _Slot] = {}

    async def starter(self, platform: str, key: str) -> GenerationRecord | None:
        """The output a story thread was opened on, or None when `key` is not a story's."""
        return await self.chat.find_by_message(platform, key)

    @asynccontextmanager
    async def in_line(self, platform: str, thread_id: str) -> AsyncIterator[None]:
        """Hold a message's place in its thread's line until its turn is done. Enter it when
        the message arrives, before anything else is awaited: the lock is first come, first
        served, so turns keep the order the members wrote them."""
        key = (platform, thread_id)
        slot = self._locks.setdefault(key, _Slot())
        slot.users += 1
        try:
            async with slot.lock:
                yield
        finally:
            slot.users -= 1
            if slot.users == 0:  # nobody waits: forget the thread's lock
                del self._locks[key]

    async def turn(self, platform: str, thread_id: str, starter: GenerationRecord) -> Turn:
        """What this turn continues (inside `in_line`); `StoryEnded` when the story went quiet."""
        count, last = await self._db.run(self._generations.in_channel, platform, thread_id)
        last = last or starter
        if count >= self.max_turns:
            raise StoryEnded(self.ended_by_turns())
        if datetime.now(UTC) - as_utc(last.created_at) > self.idle:
            raise StoryEnded(self.ended_by_idle())
        return Turn(last, self.max_turns - count - 1)

    def ended_by_turns(self) -> str:
        return (
            f"This story has reached its {self.max_turns} turns, so it ends here. "
            "Start another with /generate thread:True."
        )

    def ended_by_idle(self) -> str:
        minutes = self.idle.total_seconds() / 60
        return (
            f"This story went quiet after {minutes:g} minutes without a turn. "
            "Start another with /generate thread:True."
        )
