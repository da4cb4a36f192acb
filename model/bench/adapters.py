"""`adapters` of `gpt2bot bench generation`: the burst served by the base alone and spread
evenly over 2 and 8 adapter versions (LoRA over that base, model/engine/adapters.py), and the
same burst split 50/50 between two full versions, as an A/B experiment of two full
fine-tunes would run. The mixes run in turn and are repeated (median and spread reported).

The adapters are PEFT's own `save_pretrained` folders with random weights (speed does not
depend on them), of the rank `gpt2bot train` gives them by default (`LORA_RANK`), on every
projection GPT-2's LoRA targets. The two "full
versions" share the loaded model's parameters but each has a batch of its own, with its own
prepacked (or int8) copy of the weights, which is what a decode step reads: as with two
fine-tunes, every step of each reads its own weights.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from model.backends.base import GenerationRequest
from model.backends.local import int8_rows_of
from model.bench.measure import PeakRss, label, summarize
from model.bench.workload import BENCH_CONFIG, Workload
from model.config import FinetuneConfig
from model.engine import Engine
from model.lora import TARGET_MODULES
from model.versions import LoadedModel

ADAPTER_COUNTS = (2, 8)
REPEATS = 2

Mix = tuple[list[tuple[str, str]], list[str | None]]  # (versions to load, each request's version)


def write_adapters(loaded: LoadedModel, folder: Path, count: int) -> list[tuple[str, str]]:
    """`count` adapter versions over `loaded` in `folder`: [(version, path)]."""
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2LMHeadModel

    defaults = FinetuneConfig()
    config = LoraConfig(
        r=defaults.lora_rank,
        lora_alpha=defaults.lora_alpha,
        target_modules=list(TARGET_MODULES),
        fan_in_fan_out=True,
    )
    model = get_peft_model(GPT2LMHeadModel(loaded.model.config), config)  # type: ignore[arg-type]
    generator = torch.Generator().manual_seed(0)
    written = []
    for index in range(count):
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_" in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
        path = folder / f"adapter-{index}"
        model.save_pretrained(str(path))
        metadata = {"kind": "adapter", "base_version": loaded.version, "base_path": loaded.path}
        (path / "metadata.json").write_text(json.dumps(metadata))
        written.append((f"adapter-{index}", str(path)))
    return written


async def _burst(loaded: LoadedModel, weights: str, workload: Workload, mix: Mix) -> dict[str, Any]:
    loads, versions = mix
    # every version the engine loads is the bench's model under that version's name
    engine = Engine(
        BENCH_CONFIG,
        lambda version, _path: replace(loaded, version=version),
        int8=weights == "int8",
        int8_rows=int8_rows_of(weights),
    )
    await engine.start(loaded.version, loaded.path)
    try:
        for version, path in loads:
            await engine.load_version(version, path)
        requests = workload.requests
        asked = [versions[i % len(versions)] for i in range(len(requests))]
        for request, named in list(zip(requests, asked, strict=True))[: len(versions)]:
            warm = GenerationRequest(request.prompt, request.params, version=named)
            await engine.submit(warm).result()  # each version's first use
        with PeakRss() as rss:
            started = time.perf_counter()
            handles = [
                engine.submit(GenerationRequest(r.prompt, r.params, version=v))
                for r, v in zip(requests, asked, strict=True)
            ]
            results = [await h.result() for h in handles]
            elapsed = time.perf_counter() - started
    finally:
        await engine.close()
    tokens = sum(sum(r.completion_tokens) for r in results)
    summary = summarize(
        tokens,
        elapsed,
        [r.latency_s for r in results],
        [r.ttft_s for r in results],
        rss,
        label(loaded, weights),
    )
    served = {r.model_version for r in results}
    if served != {v or loaded.version for v in versions}:  # a mix must serve what it names
        raise RuntimeError(f"the mix named {versions} but was served by {sorted(served)}")
    return summary


def run_adapters(loaded: LoadedModel, weights: str, workload: Workload) -> dict[str, Any]:
    """Tokens/s of the burst per mix (median of `REPEATS`, mixes interleaved) and the ratios."""
    with tempfile.TemporaryDirectory(prefix="gpt2bot-bench-adapters-") as folder:
        adapters = write_adapters(loaded, Path(folder), max(ADAPTER_COUNTS))
        mixes: dict[str, Mix] = {"base": ([], [None])}
        for count in ADAPTER_COUNTS:
            chosen = adapters[:count]
            mixes[f"adapters_{count}"] = (chosen, [version for version, _ in chosen])
        mixes["two_full"] = ([("full-b", loaded.path)], [loaded.version, "full-b"])
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in mixes}
        for _ in range(REPEATS):
            for name, mix in mixes.items():
                runs[name].append(asyncio.run(_burst(loaded, weights, workload, mix)))
    results = {}
    for name, measured in runs.items():
        rates = [m["tokens_per_s"] for m in measured]
        middle = sorted(measured, key=lambda m: m["tokens_per_s"])[len(measured) // 2]
        results[name] = {
            **middle,
            "tokens_per_s": round(statistics.median(rates), 2),
            "runs": rates,
        }
    rate = {name: r["tokens_per_s"] for name, r in results.items()}
    top = max(ADAPTER_COUNTS)
    return {
        "rank": FinetuneConfig().lora_rank,
        "repeats": REPEATS,
        "dtype": label(loaded, weights),
        "results": results,
        "ratios": {
            f"adapters_{top}_vs_base": round(rate[f"adapters_{top}"] / rate["base"], 3),
            "ab_two_adapters_vs_two_full": round(rate["adapters_2"] / rate["two_full"], 3),
        },
    }
