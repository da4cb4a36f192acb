"""`gpt2bot bench generation`: the engine against the usual ways of serving GPT-2, in one run.

Scenarios on the same seeded workload (`workload.py`): burst (all requests at once,
throughput), arrivals (a Poisson process, latency), short-in-busy (a short request while long
ones run). Baselines: the naive bot (one `generate` per request, in turn), HF static batching
(one padded `generate`), transformers' `generate_batch`. Tokens/s counts useful tokens only:
what each request asked for, not padding or tokens past its own `max_new_tokens`.
Non-streaming baselines show nothing before they finish, so their TTFT is their latency.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import torch

from bot.bench.workload import BenchRequest, Workload, build_model, build_workload, with_dtype
from model.backends.base import GenerationRequest, GenerationResult
from model.backends.local import engine_dtype_name
from model.config import ModelConfig
from model.device import resolve_device, resolve_dtype
from model.engine import Engine, EngineConfig
from model.engine.linear import prepack_available
from model.engine.metrics import percentile
from model.versions import LoadedModel

TICK_S = 0.01  # the event-loop ticker's period


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
    dtype: torch.dtype,
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
        "dtype": str(dtype).removeprefix("torch."),
    }


async def _ticker(lag: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(TICK_S)
        lag[0] = max(lag[0], time.perf_counter() - before - TICK_S)


async def _engine(
    loaded: LoadedModel,
    requests: list[BenchRequest],
    arrivals: list[float],
    lag: list[float],
    prepack: bool = True,
) -> tuple[list[GenerationResult], float]:
    engine = Engine(
        EngineConfig(
            max_batch=32,
            max_queue=128,
            max_per_user=128,
            metrics_log_interval_s=0,
            cpu_prepack=prepack,
        ),
        lambda _v, _p: loaded,
    )
    await engine.start(loaded.version, loaded.path)
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(lag, stop))
    started = time.perf_counter()
    try:
        handles = []
        for request, at in zip(requests, arrivals, strict=True):
            await asyncio.sleep(max(0.0, started + at - time.perf_counter()))
            handles.append(engine.submit(GenerationRequest(request.prompt, request.params)))
        results = [await h.result() for h in handles]
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        await ticker
        await engine.close()
    return results, elapsed


def run_engine(
    loaded: LoadedModel, workload: Workload, arrivals: bool, lag: list[float], prepack: bool = True
) -> dict[str, Any]:
    times = workload.arrivals if arrivals else [0.0] * len(workload.requests)
    # warm-up: a server runs for days, so first-use costs are not what it serves at. On a GPU
    # they are many (cuBLAS picks kernels per shape, the allocator grows): a whole burst first.
    warm = workload.requests if loaded.device.type == "cuda" else workload.requests[:2]
    asyncio.run(_engine(loaded, warm, [0.0] * len(warm), lag, prepack))
    with PeakRss() as rss:
        results, elapsed = asyncio.run(_engine(loaded, workload.requests, times, lag, prepack))
    tokens = sum(sum(r.completion_tokens) for r in results)
    return summarize(
        tokens,
        elapsed,
        [r.latency_s for r in results],
        [r.ttft_s for r in results],
        rss,
        loaded.dtype,
    )


def _hf_kwargs(params: Any, eos: int) -> dict[str, Any]:
    greedy = params.temperature == 0
    return {
        "do_sample": not greedy,
        "temperature": None if greedy else params.temperature,
        "top_k": None if greedy else params.top_k,
        "top_p": None if greedy else params.top_p,
        "repetition_penalty": params.repetition_penalty,
        "pad_token_id": eos,
        "eos_token_id": eos,
    }


@torch.inference_mode()
def run_naive(loaded: LoadedModel, workload: Workload) -> dict[str, Any]:
    """The typical bot: one `generate` per request, one request at a time."""
    eos = loaded.tokenizer.eos_token_id
    latencies, tokens = [], 0
    with PeakRss() as rss:
        started = time.perf_counter()
        for request in workload.requests:
            torch.manual_seed(request.params.seed)
            ids = torch.tensor([request.prompt_ids], device=loaded.device)
            out = loaded.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),  # type: ignore[operator]
                max_new_tokens=request.params.max_new_tokens,
                **_hf_kwargs(request.params, eos),
            )
            tokens += out.shape[1] - ids.shape[1]
            latencies.append(time.perf_counter() - started)
        elapsed = time.perf_counter() - started
    return summarize(tokens, elapsed, latencies, latencies, rss, loaded.dtype)


@torch.inference_mode()
def run_static(loaded: LoadedModel, workload: Workload) -> dict[str, Any]:
    """All requests left-padded into one `generate` (one parameter set, the longest length)."""
    eos = loaded.tokenizer.eos_token_id
    requests = workload.requests
    width = max(len(r.prompt_ids) for r in requests)
    ids = torch.tensor(
        [[eos] * (width - len(r.prompt_ids)) + r.prompt_ids for r in requests], device=loaded.device
    )
    mask = torch.tensor(
        [[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in requests],
        device=loaded.device,
    )
    longest = max(r.params.max_new_tokens for r in requests)
    torch.manual_seed(0)
    with PeakRss() as rss:
        started = time.perf_counter()
        out = loaded.model.generate(
            ids,
            attention_mask=mask,
            max_new_tokens=longest,  # type: ignore[operator]
            **_hf_kwargs(requests[0].params, eos),
        )
        elapsed = time.perf_counter() - started
    new = out[:, width:]
    tokens = sum(
        min(r.params.max_new_tokens, _until_eos(row.tolist(), eos))
        for r, row in zip(requests, new, strict=True)
    )
    every = [elapsed] * len(requests)
    return summarize(tokens, elapsed, every, every, rss, loaded.dtype)


def _until_eos(ids: list[int], eos: int) -> int:
    return ids.index(eos) if eos in ids else len(ids)


@torch.inference_mode()
def run_generate_batch(loaded: LoadedModel, workload: Workload) -> dict[str, Any]:
    """transformers' own continuous batching (`generate_batch`), one sampling config for all."""
    from transformers import ContinuousBatchingConfig, GenerationConfig

    eos = loaded.tokenizer.eos_token_id
    requests = workload.requests
    config = GenerationConfig(
        max_new_tokens=max(r.params.max_new_tokens for r in requests),
        **_hf_kwargs(requests[0].params, eos),
    )
    longest = max(len(r.prompt_ids) + r.params.max_new_tokens for r in requests)
    # sized for the workload: left to itself it reserves most of the machine's memory (8 GB here)
    sizing = ContinuousBatchingConfig(
        page_size=256,
        num_blocks=len(requests) * (longest // 256 + 1),
        max_batch_tokens=2048,
        max_requests_per_batch=len(requests),
    )
    with PeakRss() as rss:
        started = time.perf_counter()
        with loaded.model.continuous_batching_context_manager(  # type: ignore[operator]
            generation_config=config, block=True, timeout=5, continuous_batching_config=sizing
        ) as manager:
            for index, request in enumerate(requests):
                manager.add_request(
                    request.prompt_ids,
                    request_id=f"r{index}",
                    max_new_tokens=request.params.max_new_tokens,
                )
            done: dict[str, tuple[float, int]] = {}
            while len(done) < len(requests):
                result = manager.get_result(timeout=1)
                if result is None and not manager.is_running():
                    raise RuntimeError("generate_batch's manager stopped")
                if result is not None and result.is_finished():
                    done[result.request_id] = (
                        time.perf_counter() - started,
                        len(result.generated_tokens),
                    )
        elapsed = time.perf_counter() - started
    latencies = [t for t, _ in done.values()]
    tokens = sum(n for _, n in done.values())
    return summarize(tokens, elapsed, latencies, latencies, rss, loaded.dtype)


async def _short_request(
    loaded: LoadedModel, workload: Workload, lag: list[float]
) -> dict[str, Any]:
    engine = Engine(
        EngineConfig(max_batch=32, max_queue=128, max_per_user=128, metrics_log_interval_s=0),
        lambda _v, _p: loaded,
    )
    await engine.start(loaded.version, loaded.path)
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(lag, stop))
    short = GenerationRequest(workload.short.prompt, workload.short.params)
    try:
        idle = await engine.submit(short).result()
        finished_at: list[float] = []

        async def long_one(request: BenchRequest) -> None:
            await engine.submit(GenerationRequest(request.prompt, request.params)).result()
            finished_at.append(time.perf_counter())

        longs = [asyncio.create_task(long_one(r)) for r in workload.long]
        while engine.stats().running_rows < len(workload.long):  # all long ones are decoding
            await asyncio.sleep(0.01)
        busy = await engine.submit(short).result()
        short_done = time.perf_counter()
        await asyncio.gather(*longs)
    finally:
        stop.set()
        await ticker
        await engine.close()
    return {
        "idle_latency_s": round(idle.latency_s, 3),
        "busy_latency_s": round(busy.latency_s, 3),
        "busy_vs_idle": round(busy.latency_s / idle.latency_s, 2),
        "long_requests": len(workload.long),
        "long_requests_finished_before": sum(t < short_done for t in finished_at),
        "dtype": str(loaded.dtype).removeprefix("torch."),
    }


def _attempt(name: str, run: Any, *args: Any) -> dict[str, Any]:
    """Run a baseline; one that cannot run says why instead of stopping the benchmark."""
    try:
        result: dict[str, Any] = run(*args)
        return result
    except Exception as error:  # a baseline's failure is a result, not a crash
        return {"error": f"{name} could not run: {type(error).__name__}: {error}"}


def _ratio(results: dict[str, dict[str, Any]], a: str, b: str) -> float | None:
    top = results.get(a, {}).get("tokens_per_s")
    bottom = results.get(b, {}).get("tokens_per_s")
    return round(top / bottom, 2) if top and bottom else None


def run_benchmark(quick: bool = False, progress: Any = None, device: str = "cpu") -> dict[str, Any]:
    """Every scenario and baseline on one workload; the JSON the CLI prints."""
    say = progress or (lambda _message: None)
    where = resolve_device(device)
    base = build_model(quick, where)
    workload = build_workload(base, quick)
    fp32 = with_dtype(base, torch.float32, "bench-fp32")
    dtype = resolve_dtype(where, engine_dtype_name(ModelConfig(), where))  # what `local` serves
    fast = fp32 if dtype == torch.float32 else with_dtype(base, dtype, f"bench-{dtype}")
    lag = [0.0]
    results: dict[str, dict[str, Any]] = {}
    say(f"engine burst ({str(fast.dtype).removeprefix('torch.')})")
    results["engine"] = run_engine(fast, workload, arrivals=False, lag=lag)
    if fast is fp32:  # the engine's dtype is fp32 here: one run answers for both
        results["engine_fp32"] = results["engine"]
    else:
        say("engine burst (float32)")
        results["engine_fp32"] = run_engine(fp32, workload, arrivals=False, lag=lag)
    if where.type == "cpu" and prepack_available():  # what prepacking brings, side by side
        say("engine burst (float32, ENGINE_CPU_PREPACK=false)")
        results["engine_fp32_unpacked"] = run_engine(fp32, workload, False, lag, prepack=False)
    say("engine arrivals")
    results["engine_arrivals"] = run_engine(fast, workload, arrivals=True, lag=lag)
    say("short request in a busy engine")
    short = asyncio.run(_short_request(fast, workload, lag))
    say("naive bot")
    results["naive"] = _attempt("naive", run_naive, fp32, workload)
    say("HF static batching")
    results["static_batch"] = _attempt("static batching", run_static, fp32, workload)
    say("transformers generate_batch")
    results["generate_batch"] = _attempt("generate_batch", run_generate_batch, fp32, workload)
    return {
        "workload": {
            **workload.shape,
            "quick": quick,
            "device": torch.cuda.get_device_name(where) if where.type == "cuda" else where.type,
            "dtype": str(dtype).removeprefix("torch."),  # the engine's default on this device
            "bf16_available": dtype == torch.bfloat16,
        },
        "results": results,
        "short_request": short,
        "ratios": {
            "engine_vs_naive": _ratio(results, "engine", "naive"),
            "engine_fp32_vs_static_batch": _ratio(results, "engine_fp32", "static_batch"),
            "engine_fp32_vs_generate_batch": _ratio(results, "engine_fp32", "generate_batch"),
            "engine_fp32_prepacked_vs_unpacked": _ratio(
                results, "engine_fp32", "engine_fp32_unpacked"
            ),
        },
        "max_loop_lag_s": round(lag[0], 4),
    }


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
        f"short request: {report['short_request']}",
        f"ratios: {report['ratios']}",
        f"max event-loop lag: {report['max_loop_lag_s']} s",
    ]
    return "\n".join(lines)
