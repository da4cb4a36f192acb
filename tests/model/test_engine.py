"""The engine on a tiny trained GPT-2: batching must not change anyone's output."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from pathlib import Path

import pytest
import torch

from model.backends.base import (
    BackendError,
    Busy,
    Cancelled,
    Chunk,
    GenerationRequest,
    GenerationResult,
    Queued,
    SamplingParams,
    TimedOut,
)
from model.engine import Engine, EngineConfig
from model.engine.batch import Batch
from model.engine.gpt2 import GPT2Runner
from tests.model.conftest import loader

GREEDY = SamplingParams(temperature=0, max_new_tokens=40, repetition_penalty=1.0)
SEEDED = SamplingParams(
    temperature=0.9, top_k=40, top_p=0.9, repetition_penalty=1.2, max_new_tokens=30, seed=1234
)
OTHERS = [
    (
        "Fine-tuning a small model",
        SamplingParams(temperature=1.0, top_k=0, top_p=1.0, seed=1, max_new_tokens=12),
    ),
    (
        "The attention mechanism lets every token look at",
        SamplingParams(seed=2, samples=2, max_new_tokens=50),
    ),
    ("Data", SamplingParams(temperature=0, repetition_penalty=1.5, max_new_tokens=7)),
    (
        "A longer prompt about training loops, learning rates and batches of text that",
        SamplingParams(temperature=0.7, top_k=5, seed=3, max_new_tokens=25),
    ),
]


async def started(path: Path, clock=time.monotonic, **config: object) -> Engine:
    engine = Engine(EngineConfig(metrics_log_interval_s=0, **config), loader(), clock=clock)  # type: ignore[arg-type]
    await engine.start("v1", str(path))
    return engine


class FakeClock:
    """A clock that moves only when told (paces the engine's queue-position updates)."""

    def __init__(self, step: float = 0.0) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


async def run(
    engine: Engine, prompt: str, params: SamplingParams, user: str = "u"
) -> tuple[GenerationResult, list[Chunk]]:
    handle = engine.submit(GenerationRequest(prompt, params, user=user))
    chunks = [event async for event in handle if isinstance(event, Chunk)]
    return await handle.result(), chunks


async def test_greedy_output_matches_transformers_generate(model_versions):
    engine = await started(model_versions["v1"])
    try:
        result, _ = await run(engine, "A language model is", GREEDY)
        loaded = engine.loaded
        ids = torch.tensor([loaded.tokenizer.encode("A language model is")], device=loaded.device)
        out = loaded.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=40,
            pad_token_id=loaded.tokenizer.eos_token_id,
        )
        expected = loaded.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    finally:
        await engine.close()
    assert result.texts[0] == expected
    assert result.completion_tokens[0] == len(out[0]) - ids.shape[1]


async def test_output_is_the_same_alone_and_inside_a_mixed_batch(model_versions):
    engine = await started(model_versions["v1"], max_per_user=20)
    try:
        alone_greedy, _ = await run(engine, "A language model is", GREEDY)
        alone_seeded, _ = await run(engine, "The attention mechanism", SEEDED)
        # the two requests again, in the middle of others, some joining while they run
        early = [engine.submit(GenerationRequest(p, s)) for p, s in OTHERS[:2]]
        greedy = asyncio.create_task(run(engine, "A language model is", GREEDY))
        seeded = asyncio.create_task(run(engine, "The attention mechanism", SEEDED))
        await asyncio.sleep(0.02)
        late = [engine.submit(GenerationRequest(p, s)) for p, s in OTHERS[2:]]
        busy_greedy, busy_seeded = (await greedy)[0], (await seeded)[0]
        for handle in early + late:
            await handle.result()
    finally:
        await engine.close()
    assert busy_greedy.texts == alone_greedy.texts
    assert busy_seeded.texts == alone_seeded.texts
    assert alone_seeded.texts[0]  # sampled text, not empty


async def test_samples_have_their_own_streams_and_chunks_add_up(model_versions):
    engine = await started(model_versions["v1"])
    try:
        params = SamplingParams(
            temperature=1.0, top_k=0, top_p=1.0, samples=3, max_new_tokens=30, seed=10
        )
        result, chunks = await run(engine, "Models learn", params)
        single, _ = await run(
            engine,
            "Models learn",
            SamplingParams(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=30, seed=11),
        )
    finally:
        await engine.close()
    assert len(set(result.texts)) == 3  # three different samples
    assert single.texts[0] == result.texts[1]  # sample 1 uses seed + 1
    for sample in range(3):
        assert "".join(c.text for c in chunks if c.sample == sample) == result.texts[sample]
    assert len(result.completion_tokens) == 3 and result.finish_reasons


async def test_queue_is_bounded_and_positions_are_reported(model_versions):
    every_call_later = FakeClock(step=60.0)  # position updates are never held back here
    engine = await started(
        model_versions["v1"], every_call_later, max_batch=1, max_queue=2, max_per_user=5
    )
    long = SamplingParams(temperature=0, max_new_tokens=200, repetition_penalty=1.0)
    try:
        first = engine.submit(GenerationRequest("one", long))
        await asyncio.sleep(0.05)  # the first one is running
        second = engine.submit(GenerationRequest("two", long))
        third = engine.submit(GenerationRequest("three", long))
        with pytest.raises(Busy) as busy:
            engine.submit(GenerationRequest("four", long))
        assert busy.value.retry_after_s > 0
        assert "retry" in str(busy.value)
        first.cancel()
        positions = []
        async for event in third:
            if isinstance(event, Queued):
                positions.append(event.position)
                if event.position == 1:
                    break
        assert positions == [2, 1]
        for handle in (second, third):
            handle.cancel()
    finally:
        await engine.close()
    assert engine.stats().rejected == 1


async def test_per_user_limit(model_versions):
    engine = await started(model_versions["v1"], max_per_user=1)
    params = SamplingParams(temperature=0, max_new_tokens=20)
    try:
        mine = engine.submit(GenerationRequest("hello", params, user="alice"))
        with pytest.raises(Busy, match="in progress"):
            engine.submit(GenerationRequest("again", params, user="alice"))
        other = engine.submit(GenerationRequest("hi", params, user="bob"))
        await mine.result()
        await other.result()
        again = engine.submit(GenerationRequest("again", params, user="alice"))  # slot freed
        await again.result()
    finally:
        await engine.close()


async def test_cancel_running_and_waiting_requests(model_versions):
    engine = await started(model_versions["v1"], max_batch=1)
    long = SamplingParams(temperature=0, max_new_tokens=900, repetition_penalty=1.0)
    try:
        running = engine.submit(GenerationRequest("a", long, user="x"))
        waiting = engine.submit(GenerationRequest("b", long, user="y"))
        async for event in running:
            if isinstance(event, Chunk):
                break
        running.cancel()
        waiting.cancel()
        with pytest.raises(Cancelled):
            await running.result()
        with pytest.raises(Cancelled):
            await waiting.result()
        after, _ = await run(engine, "still serving", GREEDY)  # the engine goes on
    finally:
        await engine.close()
    assert after.texts[0]
    assert engine.stats().cancelled == 2


async def test_timeout(model_versions, monkeypatch):
    real_decode = Batch.decode_rows

    def slow_decode(self, *args):  # a step slower than the whole time limit
        time.sleep(0.2)
        return real_decode(self, *args)

    monkeypatch.setattr(Batch, "decode_rows", slow_decode)
    engine = await started(model_versions["v1"], timeout_s=0.1)
    try:
        handle = engine.submit(GenerationRequest("The model", SamplingParams(max_new_tokens=50)))
        with pytest.raises(TimedOut, match="took longer"):
            await handle.result()
    finally:
        await engine.close()
    assert engine.stats().failed == 1


async def test_submit_does_not_wait_for_the_worker_to_tokenize(model_versions, monkeypatch):
    """`submit` runs on the event loop: a long prompt being tokenized must not stall it."""
    from model.engine import request as request_module

    real_tokenize, tokenizing = request_module.tokenize_prompt, threading.Event()

    def slow_tokenize(active, loaded):
        tokenizing.set()
        time.sleep(0.5)
        real_tokenize(active, loaded)

    monkeypatch.setattr(request_module, "tokenize_prompt", slow_tokenize)
    engine = await started(model_versions["v1"])
    params = SamplingParams(temperature=0, max_new_tokens=5)
    try:
        first = engine.submit(GenerationRequest("word " * 1200, params, user="a"))
        assert await asyncio.to_thread(tokenizing.wait, 5)
        began = time.perf_counter()
        second = engine.submit(GenerationRequest("hello", params, user="b"))
        waited = time.perf_counter() - began
        await first.result()
        await second.result()
    finally:
        await engine.close()
    assert waited < 0.25


async def test_long_prompt_is_cut_from_the_left(model_versions):
    engine = await started(model_versions["v1"])
    prompt = "word " * 1200
    try:
        result, _ = await run(engine, prompt, SamplingParams(temperature=0, max_new_tokens=24))
    finally:
        await engine.close()
    assert result.prompt_truncated
    assert result.prompt_tokens == 1024 - 24
    assert prompt.endswith(result.prompt)


async def test_swap_under_load_fails_nothing_and_releases_the_old_model(model_versions):
    engine = await started(model_versions["v1"], max_per_user=20)
    params = SamplingParams(temperature=0.8, max_new_tokens=60, seed=5)
    old_model = weakref.ref(engine.loaded.model)
    try:
        before = [engine.submit(GenerationRequest(f"before {i}", params)) for i in range(4)]
        await asyncio.sleep(0.05)
        await engine.swap("v2", str(model_versions["v2"]))
        after = [engine.submit(GenerationRequest(f"after {i}", params)) for i in range(4)]
        old_results = [await h.result() for h in before]
        new_results = [await h.result() for h in after]
        await asyncio.sleep(0.1)  # the worker drops the drained batch on its next iteration
    finally:
        await engine.close()
    assert {r.model_version for r in old_results} == {"v1"}
    assert {r.model_version for r in new_results} == {"v2"}
    gc.collect()
    assert old_model() is None


async def test_out_of_memory_splits_the_batch_and_retries(model_versions, monkeypatch):
    prompts = [
        (f"prompt number {i} about models", SamplingParams(seed=i, max_new_tokens=15))
        for i in range(6)
    ]
    engine = await started(model_versions["v1"], max_per_user=10)
    try:
        expected = [(await run(engine, p, s))[0].texts for p, s in prompts]
    finally:
        await engine.close()

    real_decode, real_prefill = Batch.decode_rows, GPT2Runner.prefill

    def small_decode(self, tokens, positions, rows):  # eager steps and CUDA graphs alike
        if tokens.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real_decode(self, tokens, positions, rows)

    def small_prefill(self, prompts, cache, first_row, lora=None):
        if len(prompts) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real_prefill(self, prompts, cache, first_row, lora)

    monkeypatch.setattr(Batch, "decode_rows", small_decode)
    monkeypatch.setattr(GPT2Runner, "prefill", small_prefill)
    engine = await started(model_versions["v1"], max_per_user=10)
    try:
        results = await asyncio.gather(*(run(engine, p, s) for p, s in prompts))
    finally:
        await engine.close()
    assert [r.texts for r, _ in results] == expected
    assert engine.stats().oom_splits > 0


async def test_metrics_describe_the_load(model_versions):
    engine = await started(model_versions["v1"], max_per_user=10)
    try:
        await asyncio.gather(
            *(run(engine, f"p{i}", SamplingParams(seed=i, max_new_tokens=20)) for i in range(5))
        )
        stats = engine.stats()
    finally:
        await engine.close()
    assert stats.completed == 5
    assert stats.tokens_generated > 0 and stats.tokens_per_s > 0
    assert 0 < stats.p50_ttft_s <= stats.p95_ttft_s <= stats.p95_latency_s
    assert stats.queue_depth == 0 and stats.model_version == "v1"


async def test_bf16_engine_keeps_the_model_quality(model_versions):
    """ENGINE_CPU_DTYPE=auto picks bf16 on CPUs with native bf16: the loss must hold."""
    from model.bootstrap import bundled_corpus

    losses = {}
    for dtype in ("fp32", "bf16"):
        loaded = loader(dtype=dtype)("v1", str(model_versions["v1"]))
        text = " ".join(bundled_corpus()[:12])
        ids = torch.tensor([loaded.tokenizer.encode(text)[:256]], device=loaded.device)
        with torch.inference_mode():
            losses[dtype] = float(loaded.model(input_ids=ids, labels=ids).loss)
    assert abs(losses["bf16"] - losses["fp32"]) / losses["fp32"] < 0.02
    engine = Engine(EngineConfig(metrics_log_interval_s=0), loader(dtype="bf16"))
    await engine.start("v1", str(model_versions["v1"]))
    try:
        result, chunks = await run(engine, "A language model is", SEEDED)
    finally:
        await engine.close()
    assert engine.loaded.dtype == torch.bfloat16
    assert result.texts[0] and "".join(c.text for c in chunks) == result.texts[0]


def test_prepacked_projections_compute_what_the_model_computes(model_versions, monkeypatch):
    """On CPU fp32 the engine multiplies by oneDNN-prepacked weights: same logits, and a
    prepacking that disagrees with the model falls back to the model's own modules."""
    from model.engine import linear

    if not linear.prepack_available():
        pytest.skip("this torch build has no oneDNN linear ops")
    loaded = loader(device="cpu")("v1", str(model_versions["v1"]))
    plain, packed = GPT2Runner(loaded.model, prepack=False), GPT2Runner(loaded.model)
    assert isinstance(packed.projections[0].qkv, linear.Prepacked)
    assert not isinstance(plain.projections[0].qkv, linear.Prepacked)
    prompts = [loaded.tokenizer.encode(text) for text in ("A language model", "Data is")]
    logits = {}
    for name, runner in (("plain", plain), ("packed", packed)):
        cache = runner.new_cache(2)
        first = runner.prefill(prompts, cache, first_row=0)
        tokens = first.argmax(-1)
        positions = torch.tensor([len(p) for p in prompts])
        logits[name] = (first, runner.decode(tokens, positions, cache, slice(0, 2)))
    for expected, got in zip(logits["plain"], logits["packed"], strict=True):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)

    monkeypatch.setattr(linear, "CHECK_TOLERANCE", -1.0)  # every comparison now fails
    fallback = GPT2Runner(loaded.model)
    assert not isinstance(fallback.projections[0].qkv, linear.Prepacked)


def test_attention_kernels_leave_out_cudnn_on_gpus():
    """cuDNN's attention plans per shape; the decode step's shape changes every step."""
    from torch.nn.attention import SDPBackend

    from model.engine.attention import attention_backends

    assert attention_backends(torch.device("cpu")) is None
    on_gpu = attention_backends(torch.device("cuda"))
    assert on_gpu is not None and SDPBackend.CUDNN_ATTENTION not in on_gpu
    assert SDPBackend.EFFICIENT_ATTENTION in on_gpu  # the decode step's mask needs it or MATH


def test_bucketed_decode_step_of_cuda_graphs_computes_the_eager_step(model_versions):
    """What a CUDA graph replays (rows padded to a bucket, a bucket of cache columns) gives
    the logits of the eager step; checked here without recording, on any device."""
    from model.engine.graphs import DecodeGraphs, buckets

    assert buckets(32) == [1, 2, 4, 8, 16, 32] and buckets(6) == [1, 2, 4, 6]
    loaded = loader()("v1", str(model_versions["v1"]))
    runner = GPT2Runner(loaded.model)
    eager_cache, padded_cache = runner.new_cache(6), runner.new_cache(6)
    padded_cache.ensure(padded_cache.limit)  # as the batch does before recording graphs

    def step(tokens, positions, columns):
        rows = slice(0, tokens.shape[0])
        return runner.decode_columns(tokens, positions, padded_cache, rows, columns)

    padded = DecodeGraphs(step, 6, runner.context, loaded.device, record=False)
    prompts = [loaded.tokenizer.encode(t) for t in ("A language model", "Data", "The loss is")]
    device = loaded.device
    for cache in (eager_cache, padded_cache):
        runner.prefill(prompts, cache, first_row=0)
    tokens = torch.tensor([11, 12, 13], device=device)
    positions = torch.tensor([len(p) for p in prompts], device=device)
    for _ in range(5):  # a few steps: the keys written by the padded step must be right too
        expected = runner.decode(tokens, positions, eager_cache, slice(0, 3))
        got = padded.run(tokens, positions)
        assert got.shape == expected.shape == (3, runner.vocab)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
        tokens, positions = expected.argmax(-1), positions + 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
async def test_cuda_graphs_serve_the_same_text_as_eager_steps(model_versions):
    outputs = {}
    for graphs in (False, True):
        engine = Engine(
            EngineConfig(metrics_log_interval_s=0, max_per_user=20, cuda_graphs=graphs),
            loader(device="cuda"),
        )
        await engine.start("v1", str(model_versions["v1"]))
        try:
            runs = [run(engine, p, s) for p, s in [("A language model is", GREEDY), *OTHERS]]
            outputs[graphs] = [r.texts for r, _ in await asyncio.gather(*runs)]
            batch = engine.residents.active
            assert (batch.graphs is not None) == graphs
            recorded = batch.graphs.recorded if batch.graphs is not None else 0
            if graphs:  # graphs hold the cache's addresses: allocated at full length up front
                assert batch.cache.columns == batch.runner.context
        finally:
            await engine.close()
    assert outputs[True] == outputs[False]
    assert recorded > 0


async def test_a_running_engine_keeps_the_loaded_heap_out_of_full_collections(model_versions):
    """A full collection holds the GIL (and so the event loop) for as long as it scans."""
    engine = await started(model_versions["v1"])
    try:
        assert gc.get_freeze_count() > 10_000  # modules, the model, the tokenizer
        await run(engine, "A language model is", GREEDY)
    finally:
        await engine.close()
    assert gc.get_freeze_count() == 0  # a closed engine leaves the collector as it was


async def test_a_crash_while_prefilling_fails_the_requests_being_admitted(
    model_versions, monkeypatch
):
    """They have left the queue but are not rows yet: without their own failure they waited
    forever."""

    def broken_prefill(self, prompts, cache, first_row, lora=None):
        raise RuntimeError("a bug in the model code (injected)")

    monkeypatch.setattr(GPT2Runner, "prefill", broken_prefill)
    engine = await started(model_versions["v1"])
    try:
        with pytest.raises(BackendError, match="generator stopped"):
            await asyncio.wait_for(run(engine, "hello", SamplingParams(max_new_tokens=5)), 30)
    finally:
        await engine.close()
