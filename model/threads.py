"""Torch work off the generation engine's worker runs on a thread of its own that then ends.

Why: a thread that ran torch CPU ops keeps its OpenMP pool while it lives, and a pool beyond the
engine's makes every decode step slower (measured in docs/engine.md, "One OpenMP pool").

`asyncio.to_thread` runs on the event loop's executor, whose threads live on (and keep their
pools), so loading a model, building the bootstrap model or scoring held-out texts there would
slow every later decode step. `run_in_own_thread` runs the call on a thread of its own, and
`to_own_thread` awaits that from the executor (whose thread only waits: no torch op, no pool).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_in_own_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on a new thread that ends with it; its result, or its exception raised here."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="torch-work") as own:
        return own.submit(contextvars.copy_context().run, fn, *args).result()


async def to_own_thread(fn: Callable[..., T], *args: Any) -> T:
    """`asyncio.to_thread`, with `fn` on a thread that ends with the call. If the caller is
    cancelled the call still runs to its end (as with `to_thread`); its result is dropped."""
    return await asyncio.to_thread(run_in_own_thread, fn, *args)
