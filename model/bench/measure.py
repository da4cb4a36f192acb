"""What every generation scenario reports: useful tokens/s, latency and TTFT percentiles, peak
memory (`PeakRss`), in one shape (`summarize`); and the machine every benchmark ran on
(`machine`)."""

from __future__ import annotations

import os
import platform
import threading
from typing import Any

import torch

from model.engine.metrics import percentile
from model.versions import LoadedModel


class PeakRss:
    """Samples this process' resident memory in a thread; `peak_mb` after the block (and the
    peak of torch's CUDA allocator, `gpu_mb`, when a GPU is in use)."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self.gpu_mb: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        self.peak_mb = max(self.peak_mb, int(line.split()[1]) / 1024)
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        if torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if torch.cuda.is_initialized():
            self.gpu_mb = torch.cuda.max_memory_allocated() / 2**20


def summarize(
    tokens: int,
    seconds: float,
    latencies: list[float],
    ttfts: list[float],
    memory: PeakRss,
    dtype: torch.dtype | str,
) -> dict[str, Any]:
    gpu = {} if memory.gpu_mb is None else {"peak_gpu_mb": round(memory.gpu_mb, 1)}
    return {
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 2),
        "p50_latency_s": round(percentile(latencies, 0.5), 3),
        "p95_latency_s": round(percentile(latencies, 0.95), 3),
        "p50_ttft_s": round(percentile(ttfts, 0.5), 3),
        "p95_ttft_s": round(percentile(ttfts, 0.95), 3),
        "peak_rss_mb": round(memory.peak_mb, 1),
        **gpu,
        "dtype": dtype_name(dtype),
    }


def dtype_name(dtype: torch.dtype | str) -> str:
    """`torch.bfloat16` -> "bfloat16"; a name ("int8") as it is."""
    return str(dtype).removeprefix("torch.")


def label(loaded: LoadedModel, weights: str) -> str:
    """The dtype a scenario reports: the model's, "int8" for int8 weights, or the model's with
    "+int8" for int8 weights in steps of few rows (`ENGINE_CPU_DTYPE=bf16+int8`)."""
    if weights == "int8":
        return "int8"
    return dtype_name(loaded.dtype) + ("+int8" if weights.endswith("+int8") else "")


def machine() -> dict[str, Any]:
    """The CPU (model and flags: these machines change between an AMD EPYC and an Intel Xeon
    with AMX, and the flags decide which kernels run), its cores and torch's threads."""
    model, flags = platform.processor() or platform.machine(), ""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model in ("", platform.machine()):
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = value.strip()
    except OSError:  # not Linux: the model is what platform says, the flags unknown
        pass
    return {
        "cpu_model": model,
        "cpu_flags": flags.split(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
