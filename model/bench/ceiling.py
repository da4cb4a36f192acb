"""How far the engine is from the machine: a GEMM at the decode shape (32 rows × C @ C × 4C,
the MLP's first projection of a full batch) through the engine's own kernels for each dtype,
and the tokens/s it implies for the whole model if every multiply ran at that rate.

A token costs 2 × (12·C² per block + V·C for the output layer) multiply-adds: ≈ 0.25 GFLOP for
GPT-2 124M. Attention, layer norms and sampling are left out, and the weights of one projection
stay in the cache while the model's do not, so no engine reaches its ceiling; the ratio says
how much of the step is the multiplies.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from model.backends.local import load_dtype_name
from model.engine import linear

ROWS = 32  # the decode batch of the benchmark
CALLS = 200  # timed calls per dtype, after warm-up; the fastest counts (see `gemm_rate`)
ITEM_BYTES = {"fp32": 4, "bf16": 2, "int8": 1}  # a weight's bytes, per dtype of CEILING_DTYPES


def weight_elements(config: Any) -> int:
    """The weights a token multiplies by: 12·C² per block and the V·C output layer."""
    width = int(config.n_embd)
    return int(config.n_layer) * 12 * width * width + int(config.vocab_size) * width


def flops_per_token(config: Any) -> float:
    return 2.0 * weight_elements(config)


def fastest_s(run: Any, calls: int, warm: int = 1) -> float:
    """Seconds of the fastest of `calls` calls of `run` after `warm` untimed ones: on a shared
    machine a slower call waited for a core and says nothing about the kernel."""
    for _ in range(warm):
        run()
    best = float("inf")
    for _ in range(calls):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best


def _kernel(dtype: str, weight: torch.Tensor) -> tuple[Any, torch.dtype]:
    """The engine's multiply for `dtype` ("fp32"/"bf16" prepacked; "int8" over the
    activations' dtype the engine serves it with) and its input dtype."""
    if dtype == "int8":
        over = torch.bfloat16 if load_dtype_name("int8") == "bf16" else torch.float32
        return linear.Int8Weights(weight.to(over), None), over
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    if linear.prepack_available():
        return linear.Prepacked(weight.to(torch_dtype), None), torch_dtype
    cast = weight.to(torch_dtype)
    return (lambda x: torch.nn.functional.linear(x, cast)), torch_dtype


@torch.inference_mode()
def gemm_rate(dtype: str, width: int) -> float:
    """GFLOP/s (GOP/s for int8) of ROWS × width @ width × 4·width in `dtype`, from the fastest
    call: a ceiling is what the machine can do, and on a shared machine a call that waited for
    a core (torch's two threads meet at a barrier) says nothing about the kernel."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(4 * width, width, generator=generator) * 0.02  # (out, in)
    multiply, input_dtype = _kernel(dtype, weight)
    x = torch.randn(ROWS, width, generator=generator).to(input_dtype)
    return 2.0 * ROWS * width * 4 * width / fastest_s(lambda: multiply(x), CALLS, warm=5) / 1e9


def ceilings(
    config: Any, dtypes: list[str], earlier: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Per dtype ("fp32", "bf16", "int8"): the GEMM rate at the decode shape and the tokens/s
    it implies; the better of this measurement and an `earlier` one of the same run."""
    per_token = flops_per_token(config)
    width = int(config.n_embd)
    out = {}
    for dtype in dtypes:
        before = (earlier or {}).get(dtype, {}).get("gemm_gflop_per_s", 0.0)
        rate = max(gemm_rate(dtype, width), before)
        out[dtype] = {
            "gemm_shape": f"{ROWS}x{width} @ {width}x{4 * width}",
            "gemm_gflop_per_s": round(rate, 1),
            "gflop_per_token": round(per_token / 1e9, 4),
            "tokens_per_s": round(rate * 1e9 / per_token, 1),
        }
    return out


def burst_bound(
    lengths: list[int], config: Any, rates: dict[str, dict[str, Any]], read_gb_s: float
) -> dict[str, dict[str, Any]]:
    """Per dtype of `rates` (a `ceilings` result): the most tokens/s any engine could serve a
    burst of requests of `lengths` new tokens at on this machine. Each decode step of k rows
    takes the longer of multiplying k tokens at the dtype's GEMM rate and reading the weights
    once at `read_gb_s`; prefill, attention and sampling cost nothing. Once rows finish, the
    batch shrinks and a step reads the same weights for fewer tokens, so a burst's bound sits
    below the ceiling, which assumes every step is full."""
    per_token, elements = flops_per_token(config), weight_elements(config)
    alive = [sum(length > step for length in lengths) for step in range(max(lengths))]
    out = {}
    for dtype, rate in rates.items():
        read_s = elements * ITEM_BYTES[dtype] / (read_gb_s * 1e9)
        compute_s = per_token / (rate["gemm_gflop_per_s"] * 1e9)
        seconds = sum(max(rows * compute_s, read_s) for rows in alive)
        bound = sum(lengths) / seconds
        out[dtype] = {
            "tokens_per_s": round(bound, 1),
            "vs_ceiling": round(bound / rate["tokens_per_s"], 3),
            "read_gb_per_s": round(read_gb_s, 1),
        }
    return out
