"""The per-step thread count of CPU decode steps (model/engine/threads.py)."""

from __future__ import annotations

import torch

from model.engine.threads import StepThreads


def test_small_decode_steps_run_on_one_thread_and_big_ones_on_all() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threads = StepThreads(small_rows=4, device=torch.device("cpu"))
        threads.fit(rows=3, prefill=False)
        assert torch.get_num_threads() == 1
        threads.fit(rows=3, prefill=True)  # a prefill is a big step whatever the rows
        assert torch.get_num_threads() == 2
        threads.fit(rows=4, prefill=False)
        assert torch.get_num_threads() == 1
        threads.fit(rows=5, prefill=False)
        assert torch.get_num_threads() == 2
        never = StepThreads(small_rows=0, device=torch.device("cpu"))
        never.fit(rows=1, prefill=False)
        assert torch.get_num_threads() == 2
        gpu = StepThreads(small_rows=4, device=torch.device("cuda"))
        gpu.fit(rows=1, prefill=False)  # GPU steps are not CPU threads' business
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
