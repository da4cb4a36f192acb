"""The CPU fast paths: decode attention as batched products, bf16 prepacked projections,
int8 weights. Same results as the reference paths (exactly enough in fp32 that greedy text is
unchanged: see test_engine.py), and int8 keeps the model's quality."""

from __future__ import annotations

import asyncio
import math

import pytest
import torch
import torch.nn.functional as F

from model.backends.base import GenerationRequest, SamplingParams
from model.backends.local import load_dtype_name
from model.bootstrap import bundled_corpus
from model.engine import Engine, EngineConfig, linear
from model.engine.attention import additive_mask, bmm_attention, sdpa_attention
from model.engine.gpt2 import GPT2Runner, KVCache
from tests.model.conftest import loader

PROMPTS = [
    "A language model is",
    "The attention mechanism",
    "Fine-tuning a small model",
    "Data",
    "Training loops and learning rates",
    "The loss is",
    "Batches of text",
    "Tokens are",
    "A model that",
    "Learning from ratings",
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_attention_as_batched_products_equals_sdpa(dtype):
    generator = torch.Generator().manual_seed(0)
    rows, heads, columns, dim = 5, 4, 70, 16
    cache = torch.randn(2, rows, heads, columns + 10, dim, generator=generator).to(dtype)
    keys, values = cache[0, :, :, :columns], cache[1, :, :, :columns]  # strided, like the cache
    query = torch.randn(rows, heads, dim, generator=generator).to(dtype)
    lengths = torch.tensor([1, 9, 33, 64, 70])
    mask = (torch.arange(columns)[None] < lengths[:, None])[:, None, None, :]
    scale = 1 / math.sqrt(dim)
    expected = sdpa_attention(query, keys, values, mask, scale)
    bias = additive_mask(mask[:, 0, 0], heads, dtype)
    got = bmm_attention(query, keys.contiguous(), values.contiguous(), bias, scale)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got.float(), expected.float(), atol=tolerance, rtol=tolerance)


def test_a_cache_left_wide_by_a_long_row_shrinks_and_keeps_what_it_stores():
    cache = KVCache(2, 3, 2, 4, limit=1024, dtype=torch.float32, device=torch.device("cpu"))
    cache.ensure(300)
    cache.keys[:, :, :, :40] = 1.0
    cache.fit(40)  # the long row left: 40 columns are in use
    assert cache.columns == 64 and bool((cache.keys[:, :, :, :40] == 1).all())
    cache.ensure(150)
    cache.fit(60)  # fewer than SHRINK_SLACK columns unused: nothing moves
    assert cache.columns == 150
    cache.keys[:, 1] = 2.0
    cache.ensure(300, rows_in_use=1)  # a growth keeps the rows in use, the others are free
    assert bool((cache.keys[:, 0, :, :40] == 1).all()) and not bool(cache.keys[:, 0, :, 150:].any())
    assert cache.clean_rows == 1
    cache.claim(1, 1)  # a row joining: zeroed before use
    assert not bool(cache.keys[:, 1].any()) and cache.clean_rows == 2


def _nan_filled(shape, like):
    return torch.full(shape, float("nan"), dtype=like.dtype, device=like.device)


def test_rows_a_growth_left_unwritten_never_reach_a_step(monkeypatch):
    """Free rows after a growth or a shrink are left as the allocator gives them (here NaN);
    a joining row is zeroed first, so every row a step reads is finite."""
    monkeypatch.setattr("model.engine.gpt2.uninitialized", _nan_filled)
    cache = KVCache(1, 4, 1, 2, limit=1024, dtype=torch.float32, device=torch.device("cpu"))
    cache.ensure(10)  # all rows kept: all zero
    assert cache.clean_rows == 4 and bool(torch.isfinite(cache.keys).all())
    cache.keys[:, :2, :, :10] = 1.0
    cache.ensure(200, rows_in_use=2)
    assert cache.clean_rows == 2 and bool(torch.isnan(cache.keys[:, 2:]).all())
    assert bool(torch.isfinite(cache.keys[:, :2]).all())
    cache.claim(2, 1)
    assert bool(torch.isfinite(cache.keys[:, :3]).all()) and cache.clean_rows == 3
    cache.fit(10, rows_in_use=1)  # a shrink copies the rows in use only
    assert cache.columns == 64 and cache.clean_rows == 1
    assert bool((cache.keys[:, 0, :, :10] == 1).all()) and bool(torch.isnan(cache.keys[:, 1]).all())


def test_a_sample_copied_past_a_growth_is_kept_when_the_next_row_joins():
    """A prefill that grows the cache keeps only the rows up to its prompts; a second sample
    copied into the next row is then in use, and the next joiner must not zero it."""
    cache = KVCache(1, 6, 1, 2, limit=1024, dtype=torch.float32, device=torch.device("cpu"))
    cache.ensure(10)
    cache.keys[:, 0] = 1.0  # a running row
    cache.ensure(100, rows_in_use=2)  # the prefill of row 1 (a long prompt) grows the cache
    cache.claim(1, 1)
    cache.keys[:, 1] = 2.0
    cache.move_row(1, 2)  # its second sample
    cache.claim(3, 1)  # the next request joins
    assert bool((cache.keys[:, 2] == 2).all()) and bool((cache.keys[:, 0, :, :64] == 1).all())
    assert not bool(cache.keys[:, 3].any())


async def test_the_engine_serves_the_same_text_over_caches_it_did_not_zero(
    model_versions, monkeypatch
):
    """Requests that join after the cache grew or shrank with fewer rows in use, and samples
    copied into fresh rows, read no NaN: the text equals the text of a run on zeroed memory."""
    greedy = SamplingParams(temperature=0, max_new_tokens=300, repetition_penalty=1.0)
    two = SamplingParams(temperature=0.9, top_k=0, top_p=0.9, samples=2, seed=5, max_new_tokens=20)

    async def texts() -> list[list[str]]:
        engine = Engine(EngineConfig(metrics_log_interval_s=0, max_per_user=20), loader())
        await engine.start("v1", str(model_versions["v1"]))
        try:
            long = engine.submit(GenerationRequest("A language model is", greedy))
            cache = engine.residents.active.cache
            for _ in range(500):  # until its row alone has grown the cache past 64 columns
                if cache.columns > 64 and cache.clean_rows == 1:  # (read while it may grow)
                    break
                await asyncio.sleep(0.01)
            assert cache.columns > 64 and cache.clean_rows == 1
            late = [engine.submit(GenerationRequest(p, two)) for p in PROMPTS[:3]]
            for _ in range(500):  # their second samples' rows are running: one more joins
                if len(engine.residents.active.rows) == 7:
                    break
                await asyncio.sleep(0.001)
            late.append(engine.submit(GenerationRequest(PROMPTS[3], two)))
            results = [await long.result()] + [await h.result() for h in late]
            again = await engine.submit(GenerationRequest("Data", two)).result()  # after a shrink
        finally:
            await engine.close()
        return [r.texts for r in [*results, again]]

    expected = await texts()
    monkeypatch.setattr("model.engine.gpt2.uninitialized", _nan_filled)
    assert await texts() == expected
    assert all(all(t for t in sample) for sample in expected)


def test_bf16_and_int8_projections_are_used_and_checked(model_versions):
    fp32 = loader()("v1", str(model_versions["v1"]))
    bf16 = loader(dtype="bf16")("v1", str(model_versions["v1"]))
    assert isinstance(GPT2Runner(bf16.model).projections[0].qkv, linear.Prepacked)
    assert isinstance(GPT2Runner(fp32.model, int8=True).projections[0].qkv, linear.Int8Weights)
    assert isinstance(GPT2Runner(bf16.model, int8=True).projections[0].up, linear.Int8Weights)
    probe = torch.randn(3, fp32.model.config.n_embd)
    block = fp32.model.transformer.h[0]
    int8 = linear.Int8Weights(block.attn.c_attn.weight.detach().t(), block.attn.c_attn.bias)
    expected = block.attn.c_attn(probe)
    error = (int8(probe) - expected).abs().max() / expected.abs().max()
    assert error < 0.02
    low = linear.Int8Weights(block.attn.c_attn.weight.detach().t().bfloat16(), None)
    error = (low(probe.bfloat16()).float() - expected + block.attn.c_attn.bias).abs().max()
    assert error / expected.abs().max() < 0.03  # a bf16 row's peak must not wrap to -128
    alone = int8(probe[1:2])  # per-row activation scales: a row's result ignores its neighbours
    torch.testing.assert_close(alone, int8(probe)[1:2], atol=1e-6, rtol=1e-6)


def _held_out_loss(runner: GPT2Runner, ids: list[int]) -> float:
    logits = runner.score(ids).float()  # (T, V)
    return float(F.cross_entropy(logits[:-1], torch.tensor(ids[1:])))


async def _greedy_texts(engine: Engine) -> list[str]:
    params = SamplingParams(temperature=0, max_new_tokens=20, repetition_penalty=1.0)
    texts = []
    for prompt in PROMPTS:
        texts.append((await engine.submit(GenerationRequest(prompt, params)).result()).texts[0])
    return texts


async def test_int8_engine_keeps_the_model_quality(model_versions, record_property):
    """ENGINE_CPU_DTYPE=int8: held-out loss within 2 % of fp32, and the same greedy text for
    most prompts (the share is reported: `-rA` shows it)."""
    fp32 = loader()("v1", str(model_versions["v1"]))
    under = load_dtype_name("int8")  # the activations' dtype under int8 weights, as served
    served = loader(dtype=under)("v1", str(model_versions["v1"]))
    text = " ".join(bundled_corpus()[-12:])
    ids = fp32.tokenizer.encode(text)[:256]
    with torch.inference_mode():
        fp32_loss = _held_out_loss(GPT2Runner(fp32.model), ids)
        int8_loss = _held_out_loss(GPT2Runner(served.model, int8=True), ids)
    assert abs(int8_loss - fp32_loss) / fp32_loss < 0.02
    texts = {}
    for int8 in (False, True):
        load = loader(dtype=under if int8 else "fp32")
        engine = Engine(EngineConfig(metrics_log_interval_s=0), load, int8=int8)
        await engine.start("v1", str(model_versions["v1"]))
        try:
            texts[int8] = await _greedy_texts(engine)
        finally:
            await engine.close()
    share = sum(a == b for a, b in zip(texts[False], texts[True], strict=True)) / len(PROMPTS)
    record_property("int8_greedy_same_text_share", share)
    print(
        f"int8: held-out loss {int8_loss:.4f} vs fp32 {fp32_loss:.4f}; same greedy text {share:.0%}"
    )
    assert share >= 0.5
