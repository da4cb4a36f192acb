"""The baselines of `gpt2bot bench generation`, all one request set on one model: the naive bot
(one `generate` per request, in turn), HF static batching (one padded `generate`),
transformers' `generate_batch` (its own continuous batching) and CTranslate2 (when installed:
the `bench` extra). Useful tokens only: what each request asked for, up to its own EOS."""

from __future__ import annotations

import tempfile
import time
from typing import Any

import torch

from model.bench.measure import PeakRss, summarize
from model.bench.workload import Workload
from model.versions import LoadedModel

# CTranslate2's CPU compute types, fastest first on the project's CPUs (int8_float32 was its
# fastest on the 2-core Zen 4; bf16 falls back to fp32 where it has no kernel)
CT2_COMPUTE_TYPES = ("int8_float32", "int8_bfloat16", "int8", "bfloat16", "float32")


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


def ctranslate2_available() -> bool:
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        return False
    return True


def run_ctranslate2(loaded: LoadedModel, workload: Workload) -> dict[str, Any]:
    """CTranslate2 on the same weights (converted from this fp32 model), one static batch of
    every request (it takes one set of sampling options and one length per call), for each
    of its CPU compute types; the best one is the result, the others are listed."""
    import ctranslate2
    from ctranslate2.converters import TransformersConverter

    supported = set(ctranslate2.get_supported_compute_types("cpu"))
    by_type: dict[str, float] = {}
    best: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gpt2bot-ct2-") as folder:
        loaded.model.save_pretrained(f"{folder}/hf")
        loaded.tokenizer.save_pretrained(f"{folder}/hf")
        TransformersConverter(f"{folder}/hf").convert(f"{folder}/ct2", force=True)
        for compute_type in [c for c in CT2_COMPUTE_TYPES if c in supported]:
            result = _ct2_batch(ctranslate2, f"{folder}/ct2", compute_type, loaded, workload)
            by_type[compute_type] = result["tokens_per_s"]
            if result["tokens_per_s"] > best.get("tokens_per_s", 0.0):
                best = result
    return {**best, "by_compute_type": by_type, "version": ctranslate2.__version__}


def _ct2_batch(
    ctranslate2: Any, path: str, compute_type: str, loaded: LoadedModel, workload: Workload
) -> dict[str, Any]:
    generator = ctranslate2.Generator(
        path, device="cpu", compute_type=compute_type, intra_threads=torch.get_num_threads()
    )
    tokenizer, requests = loaded.tokenizer, workload.requests
    eos = tokenizer.eos_token_id
    prompts = [tokenizer.convert_ids_to_tokens(r.prompt_ids) for r in requests]
    params = requests[0].params
    options = {
        "max_length": max(r.params.max_new_tokens for r in requests),
        "include_prompt_in_result": False,
        "sampling_topk": params.top_k if params.temperature > 0 and params.top_k else 1,
        "sampling_temperature": params.temperature or 1.0,
        "repetition_penalty": params.repetition_penalty,
    }
    generator.generate_batch(prompts[:2], max_length=4, include_prompt_in_result=False)  # warm
    with PeakRss() as rss:
        started = time.perf_counter()
        out = generator.generate_batch(prompts, **options)
        elapsed = time.perf_counter() - started
    tokens = sum(
        min(r.params.max_new_tokens, _until_eos(list(o.sequences_ids[0]), eos))
        for r, o in zip(requests, out, strict=True)
    )
    every = [elapsed] * len(requests)
    return {
        **summarize(tokens, elapsed, every, every, rss, compute_type),
        "compute_type": compute_type,
    }
