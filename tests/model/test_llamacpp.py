"""llama.cpp's single-sequence baseline (`model/bench/llamacpp.py`): the GGUF it writes is the
same model (llama.cpp's greedy continuation is transformers'), and a run reports
`single_stream`'s numbers for every type. Needs the `bench` extra's llama-cpp-python and gguf,
which CI does not install."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.backends.base import SamplingParams
from model.bench.llamacpp import LLAMACPP_TYPES, continuation, llamacpp_available, run_llamacpp
from tests.model.conftest import loader

pytestmark = pytest.mark.skipif(
    not llamacpp_available(),
    reason="llama-cpp-python and gguf are not installed (docs/benchmarks.md: the bench extra)",
)
NEW_TOKENS = 8


def _greedy(loaded, prompt: list[int]) -> list[int]:
    """transformers' greedy continuation, EOS suppressed as the baseline suppresses it."""
    ids = torch.tensor([prompt])
    eos = loaded.tokenizer.eos_token_id
    with torch.inference_mode():
        out = loaded.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            suppress_tokens=[eos],
            pad_token_id=eos,
        )
    return out[0, len(prompt) :].tolist()


def test_llama_cpp_continues_the_written_model_as_transformers_does(
    model_versions: dict[str, Path],
) -> None:
    loaded = loader()("v1", str(model_versions["v1"]))
    prompt = loaded.tokenizer.encode("The bot answered the members")
    expected = _greedy(loaded, prompt)
    assert continuation(loaded, prompt, NEW_TOKENS) == expected  # the f32 GGUF itself
    for name in LLAMACPP_TYPES:  # each type llama.cpp's quantizer makes loads and runs
        tokens = continuation(loaded, prompt, NEW_TOKENS, name)
        assert len(tokens) == NEW_TOKENS
        assert tokens[0] == expected[0], name  # a trained model's first choice is clear


def test_a_run_reports_single_streams_numbers_for_every_type() -> None:
    from model.bench.workload import build_model, build_workload

    loaded = build_model(quick=True)
    workload = build_workload(loaded, quick=True)
    shape = {"prompt_tokens": 4, "new_tokens": 6, "runs": 2}
    params = SamplingParams(temperature=0.8, top_k=50, max_new_tokens=6, seed=0)
    report = run_llamacpp(loaded, workload, shape, params, threads=1)
    assert set(report["by_type"]) == set(LLAMACPP_TYPES)
    assert all(isinstance(rate, float) and rate > 0 for rate in report["by_type"].values())
    assert report["type"] in LLAMACPP_TYPES
    assert report["tokens_per_s"] == max(report["by_type"].values())
    assert len(report["runs"]) == 2 and report["new_tokens"] == 6
    assert report["decode_tokens_per_s"] > 0 and report["version"].startswith("llama-cpp-python")
