"""Torch work off the generation engine's worker runs on a thread of its own that then ends.

torch's CPU ops run on OpenMP (libgomp), and every thread that runs a parallel op gets a pool of
OpenMP threads that lives as long as that thread does. libgomp spins at a barrier before it
sleeps, but only ~1,000 times once the process's OpenMP threads outnumber the CPUs: then each of
the ~500 parallel ops of a decode step ends with a futex sleep and wake-up. One idle pool beside
the engine's is enough on 2 cores. Measured on the 2-core AMD EPYC (Zen 4), GPT-2 124M, bf16,
one decode step of one row: 9.0-11.0 ms when the same thread built the model and decodes, 16.5-
20.1 ms when the model was built on the main thread and the step runs on another one (the
engine's case), back to 8.9-9.3 ms when the thread that built it had ended.

`asyncio.to_thread` runs on the event loop's executor, whose threads live on (and keep their
pools), so loading a model, building the bootstrap model or scoring held-out texts there would
slow every later decode step. `to_own_thread` and `run_in_own_thread` start a thread for the
call instead.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def run_in_own_thread(fn: Callable[..., T], *args: Any, name: str = "torch-work") -> T:
    """`fn(*args)` on a new thread that ends with it; its result, or its exception raised here."""
    box: dict[str, Any] = {}
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box["result"] = context.run(fn, *args)
        except BaseException as error:  # re-raised in the caller's thread
            box["error"] = error

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    result: T = box["result"]
    return result


async def to_own_thread(fn: Callable[..., T], *args: Any, name: str = "torch-work") -> T:
    """`asyncio.to_thread` on a new thread that ends with the call. If the caller is cancelled
    the call still runs to its end (as with `to_thread`); its result is dropped."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # the caller was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        try:
            result = context.run(fn, *args)
        except BaseException as error:  # delivered to the awaiting task
            loop.call_soon_threadsafe(settle, None, error)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future
