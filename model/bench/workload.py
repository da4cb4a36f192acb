"""The generation benchmark's model and workload: GPT-2 124M (random init, fixed seed) and 32
seeded requests with mixed prompt lengths, lengths and sampling parameters.

Speed does not depend on the weights, so random weights are fine; the tokenizer is a byte-level
BPE trained on the bundled corpus, padded with placeholder tokens to GPT-2's 50257 ids so the
output layer has GPT-2's real size.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, replace
from typing import Any

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from model.backends.base import SamplingParams
from model.bootstrap import bundled_corpus, train_tokenizer
from model.engine import EngineConfig
from model.versions import LoadedModel

SEED = 2024
# the engine every scenario serves the workload with: the whole burst admitted at once
BENCH_CONFIG = EngineConfig(max_batch=32, max_queue=128, max_per_user=128, metrics_log_interval_s=0)
FULL: dict[str, Any] = {
    "requests": 32,
    "prompt_tokens": (8, 64),
    "new_tokens": (16, 128),
    "short": 16,
    "long": 128,
    "arrival_window_s": 8.0,
}
QUICK: dict[str, Any] = {
    "requests": 8,
    "prompt_tokens": (8, 24),
    "new_tokens": (8, 24),
    "short": 4,
    "long": 24,
    "arrival_window_s": 1.0,
}
QUICK_MODEL: dict[str, Any] = {
    "n_layer": 2,
    "n_head": 2,
    "n_embd": 128,
}  # smoke runs: same code, tiny model


@dataclass(frozen=True)
class BenchRequest:
    prompt: str
    prompt_ids: list[int]
    params: SamplingParams


@dataclass(frozen=True)
class Workload:
    requests: list[BenchRequest]
    arrivals: list[float]  # seconds after the start (Poisson process)
    short: BenchRequest
    long: list[BenchRequest]
    shape: dict[str, Any]


def build_model(quick: bool, device: torch.device | None = None) -> LoadedModel:
    """Random-init GPT-2 (124M unless quick) with a tokenizer of the same vocabulary size."""
    torch.manual_seed(SEED)
    config = GPT2Config(**QUICK_MODEL) if quick else GPT2Config()
    tokenizer = train_tokenizer(bundled_corpus(), vocab_size=4096)
    filler = config.vocab_size - len(tokenizer)
    tokenizer.add_tokens([f"<unused{i}>" for i in range(filler)])
    where = device or torch.device("cpu")
    model = GPT2LMHeadModel(config).eval().to(where)  # initialized on CPU: same weights anywhere
    model.config.eos_token_id = model.config.pad_token_id = tokenizer.eos_token_id
    return LoadedModel("bench", "memory", model, tokenizer, where)


def with_dtype(loaded: LoadedModel, dtype: torch.dtype, name: str) -> LoadedModel:
    original: Any = loaded.model
    model = original if original.dtype == dtype else copy.deepcopy(original).to(dtype)
    return LoadedModel(name, loaded.path, model, loaded.tokenizer, loaded.device)


def _params(rng: random.Random, new_tokens: int, seed: int) -> SamplingParams:
    return SamplingParams(
        temperature=rng.choice([0.0, 0.7, 0.8, 1.0]),
        top_k=rng.choice([0, 40, 50]),
        top_p=rng.choice([0.9, 0.95, 1.0]),
        repetition_penalty=rng.choice([1.0, 1.1, 1.2]),
        max_new_tokens=new_tokens,
        seed=seed,
    )


def build_workload(loaded: LoadedModel, quick: bool) -> Workload:
    shape = QUICK if quick else FULL
    rng = random.Random(SEED)
    tokenizer = loaded.tokenizer
    stream = [i for line in bundled_corpus() for i in tokenizer.encode(" " + line)]

    def prompt(length: int) -> tuple[str, list[int]]:
        start = rng.randrange(0, len(stream) - length)
        text = tokenizer.decode(stream[start : start + length])
        return text, tokenizer.encode(text)

    requests = []
    for index in range(shape["requests"]):
        text, ids = prompt(rng.randint(*shape["prompt_tokens"]))
        params = _params(rng, rng.randint(*shape["new_tokens"]), seed=index)
        requests.append(BenchRequest(text, ids, params))
    rate = shape["requests"] / shape["arrival_window_s"]
    arrivals, clock = [], 0.0
    for _ in requests:
        arrivals.append(clock)
        clock += rng.expovariate(rate)
    # scaled so the last request arrives at the end of the window ("about 8 s")
    arrivals = [a * shape["arrival_window_s"] / arrivals[-1] for a in arrivals]
    short_text, short_ids = prompt(16)
    short = BenchRequest(short_text, short_ids, _params(rng, shape["short"], seed=999))
    long = [
        BenchRequest(r.prompt, r.prompt_ids, replace(r.params, max_new_tokens=shape["long"]))
        for r in requests[:-1]
    ]
    described = {
        "model": "GPT2Config(" + ", ".join(f"{k}={v}" for k, v in QUICK_MODEL.items()) + ")"
        if quick
        else "GPT2Config() (124M, random init)",
        "requests": len(requests),
        "prompt_tokens": [
            min(len(r.prompt_ids) for r in requests),
            max(len(r.prompt_ids) for r in requests),
        ],
        "max_new_tokens": [
            min(r.params.max_new_tokens for r in requests),
            max(r.params.max_new_tokens for r in requests),
        ],
        "wanted_tokens": sum(r.params.max_new_tokens for r in requests),
        "arrival_window_s": round(arrivals[-1], 2),
        "seed": SEED,
        "threads": torch.get_num_threads(),
    }
    return Workload(requests, arrivals, short, long, described)
