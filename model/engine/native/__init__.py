"""gpt2bot's own CPU kernel for decode attention (`decode_attention.cpp`), built on first use.

torch's C++ extension tools compile it once per machine with the system's C++ compiler and
ninja (about 6 s on the 2-core Zen 4) into TORCH_EXTENSIONS_DIR (default
~/.cache/torch_extensions), and later processes load the built library. It needs AVX-512 (the
flags below): on other CPUs, or where it cannot be built (no compiler, no ninja, a read-only
home), `decode_attention()` is None and the engine keeps torch's batched products, with one
log line that says why. `ENGINE_CPU_NATIVE_ATTENTION=false` never tries.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("decode_attention.cpp")
# the library's name carries the instruction set it is built for: one cached build per kind
NAME = "gpt2bot_native_avx512"
FLAGS = ["-O3", "-fopenmp", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma"]

DecodeAttention = Callable[..., torch.Tensor]


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
    with _BUILDING:
        return _built()


@functools.cache
def _built() -> DecodeAttention | None:
    why = unavailable()
    if why is None:
        try:
            from torch.utils import cpp_extension

            cpp_extension.load(
                NAME,
                [str(SOURCE)],
                extra_cflags=FLAGS,
                extra_ldflags=["-fopenmp"],
                is_python_module=False,
            )
            op: DecodeAttention = torch.ops.gpt2bot.decode_attention
            return op
        except (OSError, RuntimeError, subprocess.CalledProcessError) as error:
            last = (str(error).strip().splitlines() or ["no message"])[-1]
            why = f"its build failed ({last})"
    log.warning("native decode attention unavailable: %s; using torch's products", why)
    return None
