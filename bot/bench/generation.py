"""`gpt2bot bench generation`: the engine against the usual ways of serving GPT-2, and against
the machine, in one run.

On the same seeded workload (`model/bench/workload.py`; the other engine-only parts are beside
it in `model/bench/`): the engine in each dtype it can serve here
(`scenarios.py`: burst, arrivals, short-in-busy, one stream alone, a burst of 1,000 short
requests), the baselines (`baselines.py`: naive bot, HF static batching, `generate_batch`,
CTranslate2 when installed), llama.cpp's single sequence beside `single_stream` (`llamacpp.py`,
when installed), the tokens/s ceiling that a GEMM at the decode shape implies
for each dtype (`ceiling.py`), where a decode step's time goes against the memory bandwidth
(`breakdown.py`, CPU), the most any engine could serve the burst at on this machine
(`ceiling.burst_bound`, CPU), and the burst over adapter versions (`adapters.py`). Tokens/s
counts useful tokens only: what each request asked for, not padding or tokens past its own
`max_new_tokens`. Non-streaming baselines show nothing before they finish, so their TTFT is
their latency.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import torch

from bot.bench import scenarios
from model.backends.local import engine_dtype_name, load_dtype_name
from model.bench import baselines
from model.bench.adapters import run_adapters
from model.bench.breakdown import step_breakdown
from model.bench.ceiling import burst_bound, ceilings
from model.bench.llamacpp import llamacpp_available, run_llamacpp
from model.bench.measure import label, machine
from model.bench.workload import Workload, build_model, build_workload, with_dtype
from model.config import ModelConfig
from model.device import cpu_has_fast_bf16, resolve_device, resolve_dtype
from model.engine import native
from model.engine.linear import int8_available, prepack_available
from model.threads import run_in_own_thread as own
from model.versions import LoadedModel

SHORT = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
CEILING_DTYPES = ("fp32", "bf16", "int8")

# the model and its weights as the scenarios take them: "" (the model's own), "int8", or
# "bf16+int8" (int8 weights for steps of few rows)
Variant = tuple[LoadedModel, str]


def _variants(base: LoadedModel, where: torch.device) -> tuple[str, dict[str, Variant]]:
    """The engine's default dtype here and every dtype the run measures (short names)."""
    default = engine_dtype_name(ModelConfig(), where)
    dtype = resolve_dtype(where, load_dtype_name(default))
    fp32 = with_dtype(base, torch.float32, "bench-fp32")
    variants: dict[str, Variant] = {"fp32": (fp32, "")}
    name = default if default in ("int8", "bf16+int8") else SHORT[dtype]
    if where.type == "cpu":
        if cpu_has_fast_bf16() or name == "bf16":
            variants["bf16"] = (with_dtype(base, torch.bfloat16, "bench-bf16"), "")
        if int8_available():
            over = load_dtype_name("int8")  # the activations' dtype under int8 weights
            under = variants.get(over, (fp32, ""))[0]
            variants["int8"] = (under, "int8")
            if "bf16" in variants and native.int8_rows() is not None:
                variants["bf16+int8"] = (variants["bf16"][0], "bf16+int8")
    if name not in variants:
        variants[name] = (with_dtype(base, dtype, f"bench-{name}"), "")
    return name, variants


def _attempt(name: str, run: Any, *args: Any) -> dict[str, Any]:
    """Run a baseline; one that cannot run says why instead of stopping the benchmark."""
    try:
        result: dict[str, Any] = run(*args)
        return result
    except Exception as error:  # a baseline's failure is a result, not a crash
        return {"error": f"{name} could not run: {type(error).__name__}: {error}"}


def _ratio(top: Any, bottom: Any) -> float | None:
    return round(top / bottom, 2) if top and bottom else None


def _rate(results: dict[str, dict[str, Any]], name: str) -> Any:
    return results.get(name, {}).get("tokens_per_s")


def run_benchmark(quick: bool = False, progress: Any = None, device: str = "cpu") -> dict[str, Any]:
    """Every scenario and baseline on one workload; the JSON the CLI prints."""
    say = progress or (lambda _message: None)
    where = resolve_device(device)
    # every measurement runs on a thread of its own that then ends: an OpenMP pool left by one
    # (the main thread's included) would slow every later one's parallel ops (model/threads.py)
    base = own(build_model, quick, where)
    workload = build_workload(base, quick)
    default, variants = own(_variants, base, where)
    fast, int8 = variants[default]
    fp32 = variants["fp32"][0]
    lag = [0.0]
    results: dict[str, dict[str, Any]] = {}
    load_before = os.getloadavg()

    def measure(message: str, key: str, run: Any, *args: Any) -> None:
        say(message)
        results[key] = own(_attempt, message, run, *args)
        say(f"  {key}: {results[key].get('tokens_per_s', results[key].get('error'))} tokens/s")

    say("GEMM ceilings at the decode shape")
    ceiling = own(ceilings, base.model.config, [d for d in variants if d in CEILING_DTYPES])
    for name, (loaded, weights) in variants.items():
        run = scenarios.run_engine
        measure(
            f"engine burst ({name})",
            f"engine_{name}",
            run,
            loaded,
            workload,
            False,
            lag,
            True,
            weights,
        )
    results["engine"] = results[f"engine_{default}"]
    if where.type == "cpu" and prepack_available():  # what prepacking brings, side by side
        run = scenarios.run_engine
        measure(
            "engine burst (fp32, unpacked)",
            "engine_fp32_unpacked",
            run,
            fp32,
            workload,
            False,
            lag,
            False,
        )
    measure(
        "engine arrivals",
        "engine_arrivals",
        scenarios.run_engine,
        fast,
        workload,
        True,
        lag,
        True,
        int8,
    )
    say("short request in a busy engine")
    short = own(lambda: asyncio.run(scenarios.short_request(fast, workload, lag, int8)))
    say("one request streaming alone")
    streams = {
        n: own(scenarios.run_single_stream, m, workload, quick, i) for n, (m, i) in variants.items()
    }
    say(f"  { ({n: s['tokens_per_s'] for n, s in streams.items()}) } tokens/s")
    llamacpp = own(_llamacpp, fp32, workload, quick, where, say)
    say("a burst of 1,000 short requests")
    burst = own(scenarios.run_burst_1000, fast, workload, quick, int8)
    say(f"  generated share {burst['generated_share']}")
    say("the burst over adapter versions, and A/B of two adapters against two full versions")
    adapters = own(_attempt, "adapters", run_adapters, fast, int8, workload)
    say(f"  {adapters.get('ratios', adapters.get('error'))}")
    breakdown = None
    if where.type == "cpu":  # a decode step's parts against the memory bandwidth
        say("decode step breakdown")
        breakdown = own(step_breakdown, variants)
    measure("naive bot", "naive", baselines.run_naive, fp32, workload)
    measure("HF static batching", "static_batch", baselines.run_static, fp32, workload)
    measure("generate_batch", "generate_batch", baselines.run_generate_batch, fp32, workload)
    if where.type == "cpu" and baselines.ctranslate2_available():
        measure("CTranslate2", "ctranslate2", baselines.run_ctranslate2, fp32, workload)
    say("GEMM ceilings at the decode shape, again (the better one counts)")
    ceiling = own(ceilings, base.model.config, list(ceiling), ceiling)
    bound = None
    if breakdown is not None:  # what the burst's shape allows at this machine's bandwidth
        lengths = [r.params.max_new_tokens for r in workload.requests]
        gb_s = breakdown["read_bandwidth_gb_per_s"]
        bound = burst_bound(lengths, base.model.config, ceiling, gb_s)
    return {
        "workload": {
            **workload.shape,
            "quick": quick,
            "device": torch.cuda.get_device_name(where) if where.type == "cuda" else where.type,
            "dtype": label(fast, int8),  # the default
            "bf16_available": where.type == "cpu" and cpu_has_fast_bf16(),
            "loadavg_1min": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],  # start, end
        },
        "machine": machine(),
        "results": results,
        "ceiling": ceiling,
        "single_stream": {
            **streams[default],
            "by_dtype": {n: s["tokens_per_s"] for n, s in streams.items()},
        },
        "llamacpp": llamacpp,
        "burst_1000": burst,
        "short_request": short,
        "step_breakdown": breakdown,
        "burst_bound": bound,
        "adapters": adapters,
        "ratios": {
            **_ratios(results, ceiling, default, bound),
            "single_stream_vs_llamacpp": _ratio(
                streams[default]["tokens_per_s"], llamacpp.get("tokens_per_s")
            ),
            **adapters.get("ratios", {}),
        },
        "max_loop_lag_s": round(lag[0], 4),
    }


def _llamacpp(
    fp32: LoadedModel, workload: Workload, quick: bool, where: torch.device, say: Any
) -> dict[str, Any]:
    """llama.cpp's single sequence on the same model, prompt and sampling as `single_stream`."""
    if where.type != "cpu":
        return {"skipped": "measured on CPU only (llama-cpp-python is built for the CPU here)"}
    if not llamacpp_available():
        return {"skipped": "llama-cpp-python and gguf are not installed (docs/benchmarks.md)"}
    say("llama.cpp: one request alone")
    shape = scenarios.SINGLE_STREAM_QUICK if quick else scenarios.SINGLE_STREAM
    params = scenarios.single_stream_params(shape, seed=0)
    result = _attempt(
        "llama.cpp", run_llamacpp, fp32, workload, shape, params, torch.get_num_threads()
    )
    say(f"  llamacpp: {result.get('by_type', result.get('error'))} tokens/s")
    return result


def _ratios(
    results: dict[str, dict[str, Any]],
    ceiling: dict[str, dict[str, Any]],
    default: str,
    bound: dict[str, dict[str, Any]] | None = None,
) -> dict[str, float | None]:
    engine = _rate(results, "engine")
    # bf16+int8 multiplies a batch in bf16: its ceiling and bound are bf16's (a tail step of a
    # few rows reads int8 weights, so against bf16's bound it errs high)
    base = default.removesuffix("+int8")
    ratios = {
        "engine_vs_naive": _ratio(engine, _rate(results, "naive")),
        "engine_fp32_vs_static_batch": _ratio(
            _rate(results, "engine_fp32"), _rate(results, "static_batch")
        ),
        "engine_fp32_vs_generate_batch": _ratio(
            _rate(results, "engine_fp32"), _rate(results, "generate_batch")
        ),
        "engine_fp32_prepacked_vs_unpacked": _ratio(
            _rate(results, "engine_fp32"), _rate(results, "engine_fp32_unpacked")
        ),
        "engine_vs_ceiling": _ratio(engine, ceiling.get(base, {}).get("tokens_per_s")),
        "engine_vs_ctranslate2": _ratio(engine, _rate(results, "ctranslate2")),
        "engine_vs_burst_bound": _ratio(engine, (bound or {}).get(base, {}).get("tokens_per_s")),
    }
    for name in ceiling:
        ratios[f"engine_{name}_vs_ceiling"] = _ratio(
            _rate(results, f"engine_{name}"), ceiling[name]["tokens_per_s"]
        )
    for name in ("bf16", "int8", "bf16+int8"):
        if f"engine_{name}" in results:
            ratios[f"engine_{name}_vs_fp32"] = _ratio(
                _rate(results, f"engine_{name}"), _rate(results, "engine_fp32")
            )
    return ratios


def render(report: dict[str, Any]) -> str:
    """A human-readable table of the report."""
    lines = [f"workload: {report['workload']}", ""]
    header = f"{'':<22}{'tok/s':>9}{'p50 lat':>9}{'p95 lat':>9}{'p50 ttft':>9}{'p95 ttft':>9}"
    lines += [header + f"{'RSS MB':>9}  dtype"]
    for name, r in report["results"].items():
        if "error" in r:
            lines.append(f"{name:<22}{r['error']}")
            continue
        lines.append(
            f"{name:<22}{r['tokens_per_s']:>9.1f}{r['p50_latency_s']:>9.2f}"
            f"{r['p95_latency_s']:>9.2f}{r['p50_ttft_s']:>9.2f}{r['p95_ttft_s']:>9.2f}"
            f"{r['peak_rss_mb']:>9.0f}  {r['dtype']}"
        )
    lines += [
        "",
        f"ceiling: { {k: v['tokens_per_s'] for k, v in report['ceiling'].items()} }",
        f"single stream: {report['single_stream']}",
        f"llama.cpp single stream: {report['llamacpp']}",
        f"burst of 1,000: {report['burst_1000']}",
        f"adapters: {report['adapters']}",
        f"short request: {report['short_request']}",
        f"decode step breakdown: {report['step_breakdown']}",
        f"ratios: {report['ratios']}",
        f"max event-loop lag: {report['max_loop_lag_s']} s",
    ]
    return "\n".join(lines)
