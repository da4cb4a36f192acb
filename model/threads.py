"""Torch work off the generation engine's worker runs on a thread of its own that then ends.

torch's CPU ops run on OpenMP (libgomp), and every thread that runs a parallel op gets a pool of
OpenMP threads that lives as long as that thread does. By libgomp's source (`do_spin`), a thread
waiting at a barrier spins for a short, throttled count before it sleeps on a futex once the
process's OpenMP threads outnumber the CPUs, so each of the ~500 parallel ops of a decode step
pays a sleep and a wake-up. One idle pool beside the engine's is enough on 2 cores. Measured on
the 2-core AMD EPYC (Zen 4), GPT-2 124M, bf16, one decode step of one row: 9.0-11.0 ms when the
same thread built the model and decodes, 16.5-20.1 ms when the model was built on the main
thread and the step runs on another one (the engine's case), back to 8.9-9.3 ms when the thread
that built it had ended.

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
