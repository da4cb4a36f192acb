"""gpt2bot's own CPU kernels, built on first use: decode attention (`decode_attention.cpp`) and
int8 products for a few rows (`int8_gemv.cpp`, a lone member's decode step with int8 weights).

torch's C++ extension tools compile it once per machine with the system's C++ compiler and
ninja (about 6 s on the 2-core Zen 4) into TORCH_EXTENSIONS_DIR (default
~/.cache/torch_extensions), and later processes load the built library. It needs AVX-512 (the
flags below): on other CPUs, or where it cannot be built (no compiler, no ninja, a read-only
home), `decode_attention()` and `int8_rows()` are None and the engine keeps torch's products,
with one log line that says why. `ENGINE_CPU_NATIVE_ATTENTION=false` and
`ENGINE_CPU_NATIVE_INT8=false` never ask for theirs.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCES = [Path(__file__).with_name(name) for name in ("decode_attention.cpp", "int8_gemv.cpp")]
FLAGS = ["-O3", "-fopenmp", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma"]

DecodeAttention = Callable[..., torch.Tensor]
Int8Rows = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def library_name() -> str:
    """The build's name: the instruction set and a digest of the sources and flags, so two
    gpt2bot versions on one machine (an upgrade beside a running bot) keep a build each in
    TORCH_EXTENSIONS_DIR instead of rebuilding over each other."""
    digest = hashlib.sha256(" ".join(FLAGS).encode())
    for source in SOURCES:
        digest.update(source.read_bytes())
    return f"gpt2bot_native_avx512_{digest.hexdigest()[:12]}"


def unavailable() -> str | None:
    """Why the kernel cannot be built here, or None when it can be tried."""
    capability = torch.backends.cpu.get_cpu_capability()
    if not capability.startswith("AVX512"):
        return f"the CPU's vector unit is {capability}, and the kernel is built for AVX-512"
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler ({compiler}) on PATH"
    from torch.utils import cpp_extension  # imports setuptools: only when a build is possible

    if not cpp_extension.is_ninja_available():
        return "ninja is not installed"
    return None


# the library loads once per process, and engines load their versions on several threads
_BUILDING = threading.Lock()


def decode_attention() -> DecodeAttention | None:
    """`torch.ops.gpt2bot.decode_attention(query, key, value, keys, values, positions, scale)`
    (see decode_attention.cpp), built or loaded on the first call; None where unavailable."""
    op: DecodeAttention | None = torch.ops.gpt2bot.decode_attention if _loaded() else None
    return op


def int8_rows() -> Int8Rows | None:
    """`torch.ops.gpt2bot.int8_rows(x, weight)`: int8 (M, K) by int8 (N, K) -> int32 (M, N),
    equal to `torch._int_mm(x, weight.T)`, for at most 8 rows (see int8_gemv.cpp); None where
    unavailable."""
    op: Int8Rows | None = torch.ops.gpt2bot.int8_rows if _loaded() else None
    return op


def _loaded() -> bool:
    with _BUILDING:
        return _built()


@functools.cache
def _built() -> bool:
    why = unavailable()
    if why is None:
        try:
            from torch.utils import cpp_extension

            cpp_extension.load(
                library_name(),
                [str(source) for source in SOURCES],
                extra_cflags=FLAGS,
                extra_ldflags=["-fopenmp"],
                is_python_module=False,
            )
            return True
        except (OSError, RuntimeError, subprocess.CalledProcessError) as error:
            last = (str(error).strip().splitlines() or ["no message"])[-1]
            why = f"its build failed ({last})"
    log.warning("gpt2bot's native CPU kernels unavailable: %s; using torch's products", why)
    return False
