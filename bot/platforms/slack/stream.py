"""Showing a generation in Slack while it streams: post once, then edit in place.

Slack rate-limits `chat.update` (Web API tier 3, about 50 a minute per workspace, and bursts
per channel are throttled), so edits of one message are at most one per `edit_interval_s`;
the final text is always written. Each sample gets its own message, so each can be rated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.platforms.slack.text import escape, slack_error
from model.backends.base import Chunk, Queued
from storage import GenerationRecord

log = logging.getLogger(__name__)

EDIT_INTERVAL_S = 1.0  # about one chat.update per message per second
POST_WAIT_S = 10.0  # how long a failure notice waits for a first post still in flight
CURSOR = " …"  # marks text that is still being written
# Reactions the bot adds to each finished answer, so users see what they can do.
AFFORDANCES = ("+1", "-1", "repeat", "fast_forward")
TEMPLATE_SHOWN = 80  # characters of a prompt template a footer shows
Attach = Callable[[GenerationRecord, str], Awaitable[None]]  # (generation, stored message id)
HINT = (
    "react :+1: / :-1: to rate, :repeat: for another take, :fast_forward: to continue, "
    ":triangular_flag_on_post: to report; reply in the thread to go on with your words"
)


def message_id(channel: str, ts: str) -> str:
    """A Slack message's id in storage: `ts` is unique only within its channel."""
    return f"{channel}:{ts}"


@dataclass(frozen=True)
class Target:
    """Where and how an answer is shown."""

    channel: str
    header: str  # mrkdwn line above the text, e.g. who asked and with which options
    prompt: str = ""  # shown in bold before the output; empty for continuations
    thread_ts: str | None = None


class SlackStream:
    """Renders one request's events as Slack messages (one per sample)."""

    def __init__(
        self,
        client: AsyncWebClient,
        target: Target,
        edit_interval_s: float = EDIT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._target = target
        self._interval = edit_interval_s
        self._clock = clock
        self._texts: dict[int, str] = {}
        self._ts: dict[int, str] = {}
        self._edited_at: dict[int, float] = {}
        # first posts still in flight: a shutdown that cancels the stream meanwhile must edit
        # the message they make, not post a second one
        self._posting: dict[int, asyncio.Task[str]] = {}
        self.finished = False  # the final texts are written: nothing to take back

    @property
    def posted(self) -> bool:
        return bool(self._ts) or bool(self._posting)

    async def on_event(self, event: Queued | Chunk) -> None:
        if isinstance(event, Queued):
            waiting = f"waiting in line (position {event.position})" if event.position > 1 else ""
            await self._show(0, f"_{waiting or 'writing'}…_")
        elif isinstance(event, Chunk):
            self._texts[event.sample] = self._texts.get(event.sample, "") + event.text
            text = self._body(self._texts[event.sample]) + CURSOR
            if event.sample not in self._ts:
                await self._show(event.sample, text)
                return
            try:
                await self._show(event.sample, text)
            except SlackApiError as error:  # a missed progress edit is fine: the final one counts
                log.warning("skipped a progress edit: %s", slack_error(error))

    async def finish(
        self, generations: list[GenerationRecord], attach: Attach, notice: str | None = None
    ) -> None:
        """Link each generation to its message, then write its final text.

        Linking first means a reaction on the finished text always finds its generation.
        """
        for index, generation in enumerate(generations):
            ts = self._ts.get(index) or await self._show(index, "_writing…_", force=True)
            await attach(generation, message_id(self._target.channel, ts))
            body = self._body(generation.output) + "\n" + _footer(generation, notice)
            await self._show(index, body, force=True)
        self.finished = True

    async def fail(self, sentence: str) -> None:
        """Replace what was shown with an error sentence (posted if nothing was shown yet)."""
        if self._posting:  # let first posts land, then edit them
            done, _ = await asyncio.wait(list(self._posting.values()), timeout=POST_WAIT_S)
            for post in done:  # one that failed is posted anew below; its error was logged
                if not post.cancelled():
                    post.exception()
        for index in sorted(self._ts) or [0]:
            await self._show(index, f":warning: {sentence}", force=True)

    def _body(self, output: str) -> str:
        prompt = f"*{escape(self._target.prompt)}*" if self._target.prompt else "…"
        return f"{prompt}{escape(output)}"

    async def _show(self, index: int, body: str, force: bool = False) -> str:
        """Post or edit message `index`; throttled unless `force`. Returns its ts."""
        text = f"{self._target.header}\n{body}"
        now = self._clock()
        if index not in self._ts:
            posting = self._posting.get(index)
            if posting is None:
                posting = asyncio.create_task(self._post(index, text))
                self._posting[index] = posting
            return await asyncio.shield(posting)  # a cancelled caller leaves the post going
        if force or now - self._edited_at.get(index, float("-inf")) >= self._interval:
            await self._client.chat_update(
                channel=self._target.channel, ts=self._ts[index], text=text
            )
        else:
            return self._ts[index]
        self._edited_at[index] = now
        return self._ts[index]

    async def _post(self, index: int, text: str) -> str:
        try:
            response = await self._client.chat_postMessage(
                channel=self._target.channel, text=text, thread_ts=self._target.thread_ts
            )
            self._ts[index] = str(response["ts"])
            self._edited_at[index] = self._clock()
            return self._ts[index]
        finally:
            del self._posting[index]

    async def add_affordances(self) -> None:
        """React with the rating/regenerate/continue emoji; best effort."""
        for ts in self._ts.values():
            for name in AFFORDANCES:
                try:
                    await self._client.reactions_add(
                        channel=self._target.channel, timestamp=ts, name=name
                    )
                except SlackApiError as error:
                    log.warning("could not add :%s: to %s: %s", name, ts, slack_error(error))


def _footer(generation: GenerationRecord, notice: str | None = None) -> str:
    """Id, model, seed, the template that applied, and a cut prompt said once."""
    cut = generation.prompt_truncated and generation.kind in ("new", "regenerate")
    extra = " · prompt cut to fit" if cut else ""
    if generation.template is not None:
        shown = generation.template.replace("\n", "\\n")[:TEMPLATE_SHOWN]  # one line
        extra += f" · template `{escape(shown)}`"
    if notice:
        extra += f" · {notice}"
    return (
        f"_#{generation.id} · model {generation.model_version} · seed {generation.seed}"
        f"{extra}_ · {HINT}"
    )
