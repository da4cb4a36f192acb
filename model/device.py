"""Device and dtype choice: `auto` picks cuda > mps > cpu, and bf16/fp16 on GPU; on CPU the
caller decides (the engine: `ENGINE_CPU_DTYPE`; fine-tuning: `TRAIN_DTYPE`,
`resolve_training_dtype`)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

from model.config import DEVICES

if TYPE_CHECKING:  # accelerate is imported by training only, not by serving
    from accelerate import Accelerator

# Below this size a CPU training run uses one thread: measured on a shared 2-core machine, a
# 4-layer model stepped in 0.07 s on one thread and 4.4 s on two (OpenMP threads waiting on each
# other while other processes hold the cores); tiny ops gain nothing from threads anyway.
SMALL_MODEL_PARAMS = 20_000_000

DTYPES = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for a `DEVICE` setting; raises ValueError when it is not available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    base = name.split(":")[0]
    if base not in DEVICES:
        raise ValueError(f"unknown device {name!r}: use one of {', '.join(DEVICES)}")
    if base == "cuda" and not torch.cuda.is_available():
        raise ValueError("DEVICE=cuda but no CUDA GPU is visible: use DEVICE=auto or cpu")
    if base == "mps" and not torch.backends.mps.is_available():
        raise ValueError("DEVICE=mps but MPS is not available: use DEVICE=auto or cpu")
    return torch.device(name)


def resolve_dtype(device: torch.device, name: str = "auto") -> torch.dtype:
    """The dtype for a `DTYPE` setting on `device`."""
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}: use one of {', '.join(DTYPES)}")
    chosen = DTYPES[name]
    if chosen is not None:
        return chosen
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def resolve_training_dtype(device: torch.device, name: str = "auto") -> torch.dtype:
    """The precision a training run computes in for a `TRAIN_DTYPE` setting (the weights and
    optimizer state stay fp32; bf16/fp16 is autocast): `auto` is bf16 where the hardware
    multiplies bf16 natively (a GPU that supports it, a CPU with AVX512-BF16 or AMX; GPT-2
    124M trains 1.42x faster than fp32 on the 2-core Xeon, the same held-out loss after 21
    steps: docs/bench-training-xeon-2026-12-07.json), fp16 on other
    GPUs, fp32 elsewhere."""
    if name == "auto" and device.type == "cpu":
        return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    dtype = resolve_dtype(device, name)
    if dtype == torch.float16 and device.type == "cpu":
        raise ValueError("TRAIN_DTYPE=fp16 needs a GPU: use auto, bf16 or fp32 on a CPU")
    return dtype


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN has native bf16 kernels here (AVX512-BF16 or AMX), so bf16 pays off."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports KiB, macOS bytes)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1e6 if sys.platform == "darwin" else 1024), 1)


def set_training_threads(device: torch.device, parameters: int, threads: int = 0) -> None:
    """CPU threads of a training run: `threads`, else one for small models, else torch's."""
    if device.type != "cpu":
        return
    chosen = threads or (1 if parameters < SMALL_MODEL_PARAMS else 0)
    if chosen:
        torch.set_num_threads(chosen)


def forget_training_precision() -> None:
    """Let the next training run of this process choose its own mixed precision: accelerate
    keeps one per process and refuses another (tests and the training bench train at fp32
    and bf16 in one process). Under `accelerate launch` every process keeps the launch's."""
    if "WORLD_SIZE" in os.environ:
        return
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()


def training_accelerator(device: torch.device, dtype: torch.dtype) -> Accelerator:
    """The accelerator of a training process for `device` and the training dtype (autocast in
    bf16 or fp16; fp32 weights and optimizer state)."""
    from accelerate import Accelerator

    if device.type == "cuda" and device.index is not None and "WORLD_SIZE" not in os.environ:
        torch.cuda.set_device(device)  # one process: DEVICE=cuda:1 means that GPU
    forget_training_precision()
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "no")
    return Accelerator(cpu=device.type == "cpu", mixed_precision=precision)
