"""gpt2bot's own int8 kernel for a few rows (model/engine/native/int8_gemv.cpp): equal to
torch's int8 products bit for bit, so int8 weights decode the same text whichever ran."""

from __future__ import annotations

import pytest
import torch

from model.engine import linear, native
from model.engine.gpt2 import GPT2Runner
from tests.model.conftest import loader


@pytest.fixture(scope="module")
def int8_rows():
    why = native.unavailable()
    if why is not None:
        pytest.skip(f"the native kernels cannot be built here: {why}")
    op = native.int8_rows()
    assert op is not None, "the machine can build the kernels, but they did not build"
    return op


@pytest.mark.parametrize(
    ("rows", "k", "n"),
    [(1, 768, 2304), (3, 3072, 768), (4, 64, 50257), (8, 770, 7), (2, 5, 3)],
    ids=["qkv", "down", "head", "tails", "tiny"],  # K and N past the vector steps included
)
def test_int8_rows_equals_torchs_int8_products(int8_rows, rows, k, n):
    generator = torch.Generator().manual_seed(rows * n)
    x = torch.randint(-128, 128, (rows, k), generator=generator, dtype=torch.int8)
    weight = torch.randint(-127, 128, (n, k), generator=generator, dtype=torch.int8)
    assert torch.equal(int8_rows(x, weight), torch._int_mm(x, weight.t()))


def test_int8_rows_refuses_what_it_does_not_take(int8_rows):
    x = torch.zeros(9, 16, dtype=torch.int8)
    with pytest.raises(RuntimeError, match="at most 8 rows"):
        int8_rows(x, torch.zeros(4, 16, dtype=torch.int8))
    with pytest.raises(RuntimeError, match="int8 rows and int8 weights"):
        int8_rows(x[:2].float(), torch.zeros(4, 16, dtype=torch.int8))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_projection_gives_the_same_numbers_with_either_kernel(int8_rows, dtype):
    generator = torch.Generator().manual_seed(0)
    weight = (torch.randn(3072, 768, generator=generator) * 0.02).to(dtype)
    bias = torch.randn(3072, generator=generator).to(dtype)
    ours = linear.Int8Weights(weight, bias, gelu=True, rows_op=int8_rows)
    torchs = linear.Int8Weights(weight, bias, gelu=True)
    for rows in (1, 4, 9):  # 9: past NATIVE_INT8_ROWS, both take torch's product
        x = torch.randn(rows, 768, generator=generator).to(dtype)
        assert torch.equal(ours(x), torchs(x))


def test_an_int8_runner_uses_the_kernel_and_decodes_the_same_text(int8_rows, model_versions):
    served = loader(dtype="bf16")("v1", str(model_versions["v1"]))
    ours, torchs = (
        GPT2Runner(served.model, int8=True),
        GPT2Runner(served.model, int8=True, native_int8=False),
    )
    assert ours.projections[0].qkv.rows_op is not None and torchs.projections[0].qkv.rows_op is None
    texts = []
    for runner in (ours, torchs):
        cache = runner.new_cache(1)
        token = runner.prefill([[5, 6, 7]], cache, 0).argmax(-1)
        position, text = torch.tensor([3]), []
        for _ in range(30):
            token = runner.decode(token, position, cache, slice(0, 1)).argmax(-1)
            text.append(int(token))
            position = position + 1
        texts.append(text)
    assert texts[0] == texts[1]


def test_bf16_with_int8_for_few_rows_takes_int8_alone_and_bf16_in_a_batch(int8_rows):
    """`ENGINE_CPU_DTYPE=bf16+int8`: a step of at most NATIVE_INT8_ROWS rows reads the int8
    weights (half the bytes), a batch the prepacked bf16 ones."""
    generator = torch.Generator().manual_seed(1)
    weight = (torch.randn(2304, 768, generator=generator) * 0.02).to(torch.bfloat16)
    bias = torch.randn(2304, generator=generator).to(torch.bfloat16)
    both = linear.by_rows(weight, bias, rows_op=int8_rows, rows=linear.NATIVE_INT8_ROWS)
    int8, bf16 = linear.Int8Weights(weight, bias), linear.Prepacked(weight, bias)
    few = torch.randn(linear.NATIVE_INT8_ROWS, 768, generator=generator).to(torch.bfloat16)
    many = torch.randn(linear.NATIVE_INT8_ROWS + 1, 768, generator=generator).to(torch.bfloat16)
    assert torch.equal(both(few), int8(few)) and torch.equal(both(many), bf16(many))


def test_a_bf16_runner_with_int8_rows_serves_through_both(int8_rows, model_versions):
    served = loader(dtype="bf16")("v1", str(model_versions["v1"]))
    runner = GPT2Runner(served.model, int8_rows=linear.NATIVE_INT8_ROWS)
    assert isinstance(runner.projections[0].qkv, linear.ByRows)
    assert isinstance(runner._head, linear.ByRows)
    plain = GPT2Runner(served.model)
    assert isinstance(plain.projections[0].qkv, linear.Prepacked)
