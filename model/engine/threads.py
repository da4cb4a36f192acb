"""How many of torch's intra-op threads a CPU decode step uses.

A decode step of a few rows is hundreds of small ops; with two threads each op ends at a
barrier where one thread waits for the other, and on a 2-core machine the event loop's thread
(woken for every streamed token) takes one of the two cores from them. Measured on the 2-core
AMD EPYC, quiet, GPT-2 124M, one request streaming 128 tokens: bf16 51.8 tokens/s on two
threads, 73.5 on one (int8 44.9 -> 70.3). Big steps (many rows, or a prefill) still gain from
every thread, so the engine switches per step, between parallel regions (a cheap call).
"""

from __future__ import annotations

import torch


class StepThreads:
    """Sets torch's thread count for each step: one for a decode step of at most
    `small_rows` rows, all (as many as at start) otherwise. `small_rows` 0 never switches."""

    def __init__(self, small_rows: int, device: torch.device) -> None:
        self.small_rows = small_rows if device.type == "cpu" else 0
        self.full = torch.get_num_threads()
        self.current = self.full

    def fit(self, rows: int, prefill: bool) -> None:
        """Before a step of `rows` rows (`prefill`: it also prefills admitted prompts)."""
        if self.small_rows <= 0 or self.full <= 1:
            return
        wanted = 1 if rows <= self.small_rows and not prefill else self.full
        if wanted != self.current:
            torch.set_num_threads(wanted)
            self.current = wanted
