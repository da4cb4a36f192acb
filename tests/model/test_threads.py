"""Torch work off the engine's worker runs on threads that end with it (model/threads.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from model.engine import Engine, EngineConfig
from model.threads import run_in_own_thread, to_own_thread
from tests.model.conftest import loader


def _where() -> threading.Thread:
    return threading.current_thread()


def _fail() -> None:
    raise ValueError("the model folder is empty")


def _ended(thread: threading.Thread) -> bool:
    thread.join(timeout=5)  # its last step (telling the caller) may still be running
    return not thread.is_alive()


def test_run_in_own_thread_gives_the_result_and_the_thread_ends() -> None:
    thread = run_in_own_thread(_where)
    assert thread is not threading.current_thread()
    assert _ended(thread)
    with pytest.raises(ValueError, match="empty"):
        run_in_own_thread(_fail)


async def test_to_own_thread_gives_the_result_and_the_thread_ends() -> None:
    thread = await to_own_thread(_where)
    assert thread is not threading.current_thread()
    assert _ended(thread)
    with pytest.raises(ValueError, match="empty"):
        await to_own_thread(_fail)


async def test_a_cancelled_caller_leaves_the_call_to_finish() -> None:
    release, finished = threading.Event(), threading.Event()

    def slow() -> str:
        release.wait(5)
        finished.set()
        return "done"

    task = asyncio.create_task(to_own_thread(slow))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    assert await asyncio.to_thread(finished.wait, 5)
    await asyncio.sleep(0.05)  # its result reaches a cancelled future: dropped, no error


async def test_the_engine_loads_versions_on_threads_that_end(model_versions) -> None:
    """Not on the event loop's executor, whose threads (and their OpenMP pools) live on."""
    load, threads = loader(), []

    def recording(version: str, path: str):
        threads.append(threading.current_thread())
        return load(version, path)

    engine = Engine(EngineConfig(metrics_log_interval_s=0), recording)
    await engine.start("v1", str(model_versions["v1"]))
    try:
        await engine.load_version("v2", str(model_versions["v2"]))
        await engine.swap("v2", str(model_versions["v2"]))
        await engine.swap("v1", str(model_versions["v1"]))  # not resident any more: loaded
    finally:
        await engine.close()
    assert len(threads) == 3
    assert threading.main_thread() not in threads
    assert all(_ended(t) for t in threads)
