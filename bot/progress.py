"""The offline bootstrap model's training progress, shown while a command waits for it.

On a terminal: one bar on stderr, redrawn in place. Elsewhere (a service's log, a container):
a log line every `LOG_EVERY_STEPS` steps, so JSON logs stay one object per line. Listeners (the
web playground's "preparing" page) hear every step too. Called from the worker thread that
trains; nothing here touches the event loop.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

log = logging.getLogger("gpt2bot")

BAR_WIDTH = 30
LOG_EVERY_STEPS = 50

Listener = Callable[[int, int, float], None]  # (step, total, loss)


class BootstrapProgress:
    def __init__(self, stream: TextIO | None = None, listeners: Sequence[Listener] = ()) -> None:
        self.stream = stream or sys.stderr
        self.listeners = list(listeners)
        self.terminal = self.stream.isatty()
        self._started: float | None = None

    def __call__(self, step: int, total: int, loss: float) -> None:
        if self._started is None:
            self._started = time.perf_counter()
        for listener in self.listeners:
            listener(step, total, loss)
        elapsed = time.perf_counter() - self._started
        eta = elapsed / max(step, 1) * (total - step)
        if self.terminal:
            done = BAR_WIDTH * step // total
            bar = f"[{'#' * done}{'.' * (BAR_WIDTH - done)}]"
            line = f"\rbootstrap model {bar} step {step}/{total} loss {loss:.3f} ETA {eta:.0f}s"
            end = "\n" if step == total else ""
            print(line, end=end, file=self.stream, flush=True)
        elif step % LOG_EVERY_STEPS == 0 or step == total:
            log.info(
                "bootstrap training %d%% (step %d/%d, loss %.3f, ETA %.0fs)",
                100 * step // total,
                step,
                total,
                loss,
                eta,
            )
