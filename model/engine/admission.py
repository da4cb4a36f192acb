"""Admission by expected wait: a request may queue while its estimated start is within
`ENGINE_MAX_WAIT_S`, and is refused with an honest retry-after beyond that.

The estimate is the work ahead of a new request (the tokens still to generate for the running
rows, plus every waiting request's `max_new_tokens` × samples) divided by the rate the engine
sustains with a full batch, measured from its own iterations (prefill and sampling included).
`max_new_tokens` is an upper bound (a row may stop early at EOS), so the estimate errs late,
never early: a request told it will start within the budget does.

The rate at a full batch is what a queue is served at. It is taken from the iterations of the
largest batch measured so far (exponential average per bucket of rows); while only smaller
batches have been seen, their rate stands for the full batch's (a batch of more rows is never
slower per token on these kernels, so this errs on the slow side). Before any iteration the
engine times one decode step of a full batch (`seed`), with a margin for what that step leaves
out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from model.backends.base import Busy

DEFAULT_RETRY_S = 5.0  # a user's retry-after before any request has finished
SMOOTHING = 0.2  # weight of the newest iteration in the average step time of its bucket
SEED_MARGIN = 1.5  # the seeding step has no prefill, sampling or long context: assume slower


def row_bucket(rows: int) -> int:
    """The power of two at or above `rows` (steps are averaged per bucket)."""
    return 1 << max(0, rows - 1).bit_length()


class Throughput:
    """Seconds per iteration per bucket of running rows, and the token rate they imply."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._step_s: dict[int, float] = {}  # bucket -> average seconds per iteration

    def seed(self, rows: int, time_step: Callable[[], float]) -> None:
        """A first guess for steps of `rows` rows from `time_step()` (seconds of one timed
        step), kept until measured; timed only when there is no guess yet (later loads of a
        version, beside a decoding worker, would time slow steps and be thrown away)."""
        if row_bucket(rows) not in self._step_s:
            self._step_s[row_bucket(rows)] = time_step() * SEED_MARGIN

    def record(self, rows: int, seconds: float) -> None:
        """One iteration that decoded `rows` rows (one token each) in `seconds`."""
        if rows <= 0 or seconds <= 0:
            return
        bucket = row_bucket(rows)
        # scaled to a full bucket as if time grew with rows: errs slow for a half-full one
        seconds = seconds * min(bucket, self.max_rows) / rows
        previous = self._step_s.get(bucket)
        self._step_s[bucket] = (
            seconds if previous is None else previous + SMOOTHING * (seconds - previous)
        )

    def tokens_per_s(self) -> float | None:
        """Tokens per second of a full batch (None before anything was seeded or measured)."""
        if not self._step_s:
            return None
        bucket = max(self._step_s)
        return min(bucket, self.max_rows) / self._step_s[bucket]


@dataclass(frozen=True)
class Load:
    """What is ahead of a new request when it arrives."""

    running_tokens: int  # tokens the running rows may still generate
    waiting_tokens: int  # tokens the waiting requests may generate
    waiting: int  # requests waiting
    free_rows: int  # rows free in the batch now


def expected_wait_s(load: Load, samples: int, tokens_per_s: float | None) -> float:
    """Seconds until a new request of `samples` rows starts decoding (0: it joins at once)."""
    if load.waiting == 0 and load.free_rows >= samples:
        return 0.0
    if not tokens_per_s:
        return 0.0  # nothing measured yet: only the count limit applies
    return (load.running_tokens + load.waiting_tokens) / tokens_per_s


def check_wait(
    load: Load, samples: int, tokens_per_s: float | None, max_wait_s: float, max_queue: int
) -> None:
    """Raise `Busy` when the request would start later than `max_wait_s` or the queue holds
    `max_queue` requests; the retry-after says when the work ahead will have shrunk enough."""
    wait = expected_wait_s(load, samples, tokens_per_s)
    if wait > max_wait_s:
        retry = max(1.0, math.ceil(wait - max_wait_s))
        raise Busy(
            f"The generator is busy: your request would start in about {wait:.0f} s. "
            f"Please retry in {retry:.0f} s.",
            retry,
        )
    if load.waiting >= max_queue:
        # the queue's head starts first: wait until the overflow has been admitted
        overflow = load.waiting - max_queue + 1
        per_request = wait / load.waiting if wait else 0.0
        retry = max(1.0, math.ceil(per_request * overflow))
        raise Busy(f"The generator is busy. Please retry in {retry:.0f} s.", retry)


class Admission:
    """The engine's admission decision and the load it rests on. The engine's lock guards it:
    `submit` decides on the event loop, the worker updates the load after each iteration."""

    def __init__(self, max_batch: int, max_wait_s: float, max_queue: int, max_per_user: int):
        self.max_wait_s, self.max_queue, self.max_per_user = max_wait_s, max_queue, max_per_user
        self.throughput = Throughput(max_batch)
        self.waiting_tokens = 0  # tokens the waiting requests may generate
        self.running_tokens = 0  # tokens the running rows may still generate
        self.free_rows = max_batch  # free rows of the batch serving new requests

    def load(self, waiting: int) -> Load:
        return Load(self.running_tokens, self.waiting_tokens, waiting, self.free_rows)

    def expected_wait_s(self, waiting: int, samples: int = 1) -> float:
        return expected_wait_s(self.load(waiting), samples, self.throughput.tokens_per_s())

    def check(self, samples: int, waiting: int, users_requests: int, mean_latency_s: float) -> None:
        """Raise `Busy` when a request of `samples` rows may not queue now: it would start too
        late, the queue is full, or its user has `max_per_user` requests in progress."""
        rate = self.throughput.tokens_per_s()
        check_wait(self.load(waiting), samples, rate, self.max_wait_s, self.max_queue)
        if users_requests >= self.max_per_user:
            # the user's own requests end first: about one latency per batch of queue ahead
            rounds = waiting / max(1, self.throughput.max_rows) + 1
            retry = float(math.ceil((mean_latency_s or DEFAULT_RETRY_S) * rounds))
            raise Busy(
                f"You already have {users_requests} requests in progress. "
                "Wait for one to finish, then try again.",
                retry,
            )

    def queued(self, work: int) -> None:
        self.waiting_tokens += work

    def left_queue(self, work: int) -> None:
        self.waiting_tokens = max(0, self.waiting_tokens - work)
