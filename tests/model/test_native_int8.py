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
    x = torch.randint(-127, 128, (rows, k), generator=generator, dtype=torch.int8)
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
