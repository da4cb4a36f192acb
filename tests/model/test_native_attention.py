"""gpt2bot's own CPU decode attention (model/engine/native): the same attention as torch's
products, the step's keys and values written where the row's position says and nowhere else,
greedy text unchanged through the engine, and a clear fallback where it cannot be built."""

from __future__ import annotations

import math

import pytest
import torch

from model.engine import native
from model.engine.attention import sdpa_attention
from model.engine.gpt2 import GPT2Runner
from tests.model.conftest import loader


@pytest.fixture(scope="module")
def kernel():
    why = native.unavailable()
    if why is not None:
        pytest.skip(f"native decode attention cannot be built here: {why}")
    op = native.decode_attention()
    assert op is not None, "the machine can build the kernel, but it did not build"
    return op


def _problem(dtype: torch.dtype, dim: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    rows, heads, allocated = 5, 3, 90
    cache = torch.randn(2, rows + 1, heads, allocated, dim, generator=generator).to(dtype)
    keys, values = cache[0, 1:], cache[1, 1:]  # views of the cache's rows 1..5, as in a step
    qkv = torch.randn(rows, 3, heads, dim, generator=generator).to(dtype)  # the step's projection
    positions = torch.tensor([0, 8, 32, 63, 89])  # the first row's first token; one at the end
    return cache, keys, values, qkv, positions


@pytest.mark.parametrize("dim", [64, 8], ids=["vector", "scalar"])  # AVX-512 path, any width
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_native_attention_equals_sdpa_and_writes_only_the_new_column(kernel, dtype, dim):
    cache, keys, values, qkv, positions = _problem(dtype, dim)
    before = cache.clone()
    scale = 1 / math.sqrt(dim)
    got = kernel(qkv[:, 0], qkv[:, 1], qkv[:, 2], keys, values, positions, scale)

    rows = torch.arange(len(positions))
    expected_keys, expected_values = before[0, 1:].clone(), before[1, 1:].clone()
    expected_keys[rows, :, positions] = qkv[:, 1]
    expected_values[rows, :, positions] = qkv[:, 2]
    assert torch.equal(keys, expected_keys) and torch.equal(values, expected_values)
    assert torch.equal(cache[:, 0], before[:, 0])  # a row outside the step is untouched

    visible = torch.arange(keys.shape[2])[None] <= positions[:, None]
    expected = sdpa_attention(qkv[:, 0], keys, values, visible[:, None, None, :], scale)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got.float(), expected.float(), atol=tolerance, rtol=tolerance)
    assert got.dtype == dtype and got.shape == (len(positions), qkv.shape[2] * dim)


def test_native_attention_never_reads_past_a_rows_position(kernel):
    _, keys, values, qkv, positions = _problem(torch.float32, 64, seed=1)
    clean = kernel(qkv[:, 0], qkv[:, 1], qkv[:, 2], keys.clone(), values.clone(), positions, 0.125)
    for row, position in enumerate(positions.tolist()):  # what lies past each row's end
        keys[row, :, position + 1 :] = float("nan")
        values[row, :, position + 1 :] = float("nan")
    dirty = kernel(qkv[:, 0], qkv[:, 1], qkv[:, 2], keys, values, positions, 0.125)
    assert torch.equal(dirty, clean)


def test_native_attention_refuses_a_position_outside_the_cache(kernel):
    _, keys, values, qkv, positions = _problem(torch.float32, 8)
    positions[2] = keys.shape[2]
    with pytest.raises(RuntimeError, match="position outside the cache"):
        kernel(qkv[:, 0], qkv[:, 1], qkv[:, 2], keys, values, positions, 0.125)
    with pytest.raises(RuntimeError, match="float32 or bfloat16"):
        half = qkv.half()
        kernel(half[:, 0], half[:, 1], half[:, 2], keys.half(), values.half(), positions, 0.1)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_greedy_decoding_is_the_same_with_either_attention(kernel, model_versions, dtype):
    model = loader(dtype=dtype)("v1", str(model_versions["v1"])).model
    ours, torchs = GPT2Runner(model), GPT2Runner(model, native_attention=False)
    assert ours.native_attention is not None and torchs.native_attention is None
    prompts = [[5, 6, 7], [8], [9, 10, 11, 12, 13], [14, 15]]
    caches = [ours.new_cache(4), torchs.new_cache(4)]
    tokens = [
        r.prefill(prompts, c, 0).argmax(-1) for r, c in zip((ours, torchs), caches, strict=True)
    ]
    positions = torch.tensor([len(p) for p in prompts])
    texts: list[list[torch.Tensor]] = [[], []]
    for _ in range(70):  # past the cache's first growth (64 columns)
        for side, (runner, cache) in enumerate(zip((ours, torchs), caches, strict=True)):
            tokens[side] = runner.decode(tokens[side], positions, cache, slice(0, 4)).argmax(-1)
            texts[side].append(tokens[side])
        positions = positions + 1
    same = torch.stack(texts[0]) == torch.stack(texts[1])
    # fp32 agrees token for token; bf16 rounds the two sums differently, so allow a rare flip
    assert same.all() if dtype == "fp32" else same.float().mean() >= 0.95


def test_without_a_compiler_the_log_says_why_and_torch_attends(monkeypatch, caplog):
    monkeypatch.setenv("CXX", "no-such-compiler-gpt2bot")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert native.unavailable() == "no C++ compiler (no-such-compiler-gpt2bot) on PATH"
    with caplog.at_level("WARNING", logger="model.engine.native"):
        assert native._built.__wrapped__() is False  # the decision, outside the process's cache
    assert "no C++ compiler (no-such-compiler-gpt2bot)" in caplog.text
    assert "using torch's products" in caplog.text
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert native.unavailable() == (
        "the CPU's vector unit is AVX2, and the kernel is built for AVX-512"
    )
