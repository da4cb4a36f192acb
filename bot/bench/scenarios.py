"""The engine's scenarios of `gpt2bot bench generation`: the burst (all requests at once),
arrivals (a Poisson process), a short request in a busy engine, one request streaming alone
(`single_stream`), and a burst of 1,000 short requests under admission by expected wait
(`burst_1000`, screened by the default moderator as the chat screens it). Each builds its own
`Engine` on an already loaded model.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import replace
from typing import Any

from admin.moderation import ModerationConfig, Moderator
from admin.moderation.default import DefaultModerator
from model.backends.base import Busy, GenerationRequest, GenerationResult, SamplingParams
from model.backends.local import int8_rows_of
from model.bench.measure import PeakRss, label, summarize
from model.bench.workload import BENCH_CONFIG, BenchRequest, Workload
from model.engine import Engine, EngineConfig
from model.engine.metrics import percentile
from model.versions import LoadedModel

TICK_S = 0.01  # the event-loop ticker's period
SINGLE_STREAM: dict[str, Any] = {"prompt_tokens": 16, "new_tokens": 128, "runs": 5}
SINGLE_STREAM_QUICK: dict[str, Any] = {"prompt_tokens": 4, "new_tokens": 16, "runs": 3}
BURST: dict[str, Any] = {"requests": 1000, "new_tokens": 12, "prompt_tokens": (8, 32)}
BURST_QUICK: dict[str, Any] = {"requests": 100, "new_tokens": 4, "prompt_tokens": (4, 8)}


def engine_on(config: EngineConfig, loaded: LoadedModel, weights: str) -> Engine:
    """The bench's engine on `loaded`: `weights` "" (its own dtype), "int8" (int8 weights) or
    "<dtype>+int8" (int8 weights for steps of few rows), as `ENGINE_CPU_DTYPE` names them."""
    rows = int8_rows_of(weights)
    return Engine(config, lambda _v, _p: loaded, int8=weights == "int8", int8_rows=rows)


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
    config: EngineConfig,
    weights: str,
) -> tuple[list[GenerationResult], float]:
    engine = engine_on(config, loaded, weights)
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
    loaded: LoadedModel,
    workload: Workload,
    arrivals: bool,
    lag: list[float],
    prepack: bool = True,
    weights: str = "",
) -> dict[str, Any]:
    times = workload.arrivals if arrivals else [0.0] * len(workload.requests)
    config = replace(BENCH_CONFIG, cpu_prepack=prepack)
    # warm-up: a server runs for days, so first-use costs are not what it serves at. On a GPU
    # they are many (cuBLAS picks kernels per shape, the allocator grows): a whole burst first.
    warm = workload.requests if loaded.device.type == "cuda" else workload.requests[:2]
    asyncio.run(_engine(loaded, warm, [0.0] * len(warm), lag, config, weights))
    with PeakRss() as rss:
        results, elapsed = asyncio.run(
            _engine(loaded, workload.requests, times, lag, config, weights)
        )
    tokens = sum(sum(r.completion_tokens) for r in results)
    latencies, ttfts = [r.latency_s for r in results], [r.ttft_s for r in results]
    return summarize(tokens, elapsed, latencies, ttfts, rss, label(loaded, weights))


async def short_request(
    loaded: LoadedModel, workload: Workload, lag: list[float], weights: str = ""
) -> dict[str, Any]:
    """A short request alone, then while the long ones run: what a member waits in a busy bot."""
    engine = engine_on(BENCH_CONFIG, loaded, weights)
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
        "dtype": label(loaded, weights),
    }


def single_stream_params(shape: dict[str, Any], seed: int) -> SamplingParams:
    """The lone request's sampling (the llama.cpp baseline samples the same way)."""
    return SamplingParams(temperature=0.8, top_k=50, max_new_tokens=shape["new_tokens"], seed=seed)


async def _single_stream(
    loaded: LoadedModel, workload: Workload, shape: dict[str, Any], weights: str
) -> list[GenerationResult]:
    engine = engine_on(BENCH_CONFIG, loaded, weights)
    await engine.start(loaded.version, loaded.path)
    ids = workload.short.prompt_ids[: shape["prompt_tokens"]]
    prompt = loaded.tokenizer.decode(ids)
    results = []
    try:
        for run in range(shape["runs"] + 1):  # the first one warms up
            params = single_stream_params(shape, seed=run)
            results.append(await engine.submit(GenerationRequest(prompt, params)).result())
    finally:
        await engine.close()
    return results[1:]


def run_single_stream(
    loaded: LoadedModel, workload: Workload, quick: bool, weights: str = ""
) -> dict[str, Any]:
    """One request alone, streamed: its tokens over its latency (prefill included), median of
    the runs; `decode_tokens_per_s` leaves the first token (prefill) out."""
    shape = SINGLE_STREAM_QUICK if quick else SINGLE_STREAM
    results = asyncio.run(_single_stream(loaded, workload, shape, weights))
    rates = [r.completion_tokens[0] / r.latency_s for r in results]
    decode = [
        (r.completion_tokens[0] - 1) / (r.latency_s - r.ttft_s)
        for r in results
        if r.completion_tokens[0] > 1 and r.latency_s > r.ttft_s
    ]
    return {
        "tokens_per_s": round(statistics.median(rates), 2),
        "decode_tokens_per_s": round(statistics.median(decode), 2) if decode else None,
        "best_tokens_per_s": round(max(rates), 2),  # the least disturbed run on a shared machine
        "runs": [round(rate, 2) for rate in rates],
        "prompt_tokens": shape["prompt_tokens"],
        "new_tokens": [r.completion_tokens[0] for r in results],
        "dtype": label(loaded, weights),
    }


def burst_requests(loaded: LoadedModel, workload: Workload, quick: bool) -> list[BenchRequest]:
    """Short requests, one member each, with the workload's mix of sampling parameters."""
    shape = BURST_QUICK if quick else BURST
    rng = random.Random(len(workload.requests))
    stream = [i for r in workload.requests for i in r.prompt_ids]
    requests = []
    for index in range(shape["requests"]):
        length = rng.randint(*shape["prompt_tokens"])
        start = rng.randrange(0, len(stream) - length)
        ids = stream[start : start + length]
        model = workload.requests[index % len(workload.requests)].params
        params = replace(model, max_new_tokens=shape["new_tokens"], seed=index)
        requests.append(BenchRequest(loaded.tokenizer.decode(ids), ids, params))
    return requests


async def _burst(
    loaded: LoadedModel,
    requests: list[BenchRequest],
    config: EngineConfig,
    weights: str,
    moderator: Moderator,
) -> tuple[list[GenerationResult | Busy], float, float]:
    """Every member at once, each screened as the chat screens it (the prompt before it is
    queued, the output when it is done); returns the outcomes, the seconds and the event
    loop's longest stall."""
    engine = engine_on(config, loaded, weights)
    await engine.start(loaded.version, loaded.path)
    lag, stop = [0.0], asyncio.Event()
    ticker = asyncio.create_task(_ticker(lag, stop))

    async def member(index: int, request: BenchRequest) -> GenerationResult | Busy:
        await moderator.check(request.prompt)
        asked = GenerationRequest(request.prompt, request.params, user=f"member{index}")
        try:
            handle = engine.submit(asked)
        except Busy as busy:
            return busy
        result = await handle.result()
        await asyncio.gather(*(moderator.check(text) for text in result.texts))
        return result

    started = time.perf_counter()
    try:
        outcomes = await asyncio.gather(*(member(i, r) for i, r in enumerate(requests)))
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        await ticker
        await engine.close()
    return list(outcomes), elapsed, lag[0]


def run_burst_1000(
    loaded: LoadedModel, workload: Workload, quick: bool, weights: str = ""
) -> dict[str, Any]:
    """1,000 members send a short request at once; the engine queues what it expects to start
    within `ENGINE_MAX_WAIT_S` (default settings otherwise) and refuses the rest. Prompts and
    outputs pass the default moderator, as in the chat; `loop_max_stall_ms` is the event
    loop's longest stall meanwhile (Discord wants each member acknowledged within 3 s)."""
    config = EngineConfig(metrics_log_interval_s=0)  # the defaults a bot runs with
    requests = burst_requests(loaded, workload, quick)
    moderator = DefaultModerator(ModerationConfig())
    outcomes, elapsed, stall = asyncio.run(_burst(loaded, requests, config, weights, moderator))
    done = [o for o in outcomes if isinstance(o, GenerationResult)]
    refused = [o for o in outcomes if isinstance(o, Busy)]
    waits = [r.ttft_s for r in done]
    tokens = sum(sum(r.completion_tokens) for r in done)
    return {
        "requests": len(requests),
        "new_tokens": requests[0].params.max_new_tokens,
        "max_wait_s": config.max_wait_s,
        "generated": len(done),
        "refused": len(refused),
        "generated_share": round(len(done) / len(requests), 4),
        "started_within_max_wait_share": round(
            sum(w <= config.max_wait_s for w in waits) / len(requests), 4
        ),
        "goodput_tokens_per_s": round(tokens / elapsed, 2),
        "seconds": round(elapsed, 2),
        "p50_ttft_s": round(percentile(waits, 0.5), 3),
        "p95_ttft_s": round(percentile(waits, 0.95), 3),
        "p95_latency_s": round(percentile([r.latency_s for r in done], 0.95), 3),
        "max_retry_after_s": max((b.retry_after_s for b in refused), default=None),
        "loop_max_stall_ms": round(stall * 1000, 1),
        "dtype": label(loaded, weights),
    }
