"""Adapter versions (LoRA, as PEFT saves them) served over one resident base: a request naming
an adapter gets exactly what the merged model would give, whatever else shares its steps; the
base batch is one; adapters come and go without reloading the base."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from model.backends.base import GenerationRequest, SamplingParams
from model.engine import Engine, EngineConfig
from model.engine.adapters import AdapterStack, UnsupportedAdapter, read_adapter
from model.engine.gpt2 import GPT2Runner
from model.versions import load_model
from tests.model.conftest import loader

GREEDY = SamplingParams(temperature=0, max_new_tokens=24, repetition_penalty=1.0)
SEEDED = SamplingParams(temperature=0.8, top_k=30, max_new_tokens=20, seed=5)
PROMPTS = [("A language model is", GREEDY), ("The data", SEEDED), ("Tokens", GREEDY)]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def make_adapter(base: Path, root: Path, name: str, seed: int, **lora: object) -> dict[str, Path]:
    """An adapter version over `base` (random LoRA weights, so it changes the output) and the
    merged full model it equals; {"adapter": folder, "merged": folder}."""
    model = AutoModelForCausalLM.from_pretrained(base)
    options = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, **lora}
    config = LoraConfig(target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True, **options)  # type: ignore[arg-type]
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter_name, parameter in peft_model.named_parameters():
            if "lora_" in parameter_name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    adapter, merged = root / name, root / f"{name}-merged"
    peft_model.save_pretrained(adapter)
    metadata = {"kind": "adapter", "base_version": "v1", "base_path": str(base)}
    (adapter / "metadata.json").write_text(json.dumps(metadata))
    peft_model.merge_and_unload().save_pretrained(merged)
    for folder in (adapter, merged):
        for file in TOKENIZER_FILES:
            if (base / file).exists():
                shutil.copy(base / file, folder / file)
    return {"adapter": adapter, "merged": merged}


@pytest.fixture(scope="module")
def adapters(model_versions, tmp_path_factory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("adapters")
    base = model_versions["v1"]
    return {name: make_adapter(base, root, name, seed) for name, seed in (("a1", 1), ("a2", 2))}


async def started(path: Path, version: str, **config: object) -> Engine:
    settings = EngineConfig(metrics_log_interval_s=0, max_per_user=50, **config)  # type: ignore[arg-type]
    engine = Engine(settings, loader())
    await engine.start(version, str(path))
    return engine


async def texts_alone(path: Path, version: str) -> list[list[str]]:
    engine = await started(path, version)
    try:
        handles = [engine.submit(GenerationRequest(p, s)) for p, s in PROMPTS]
        return [(await h.result()).texts for h in handles]
    finally:
        await engine.close()


async def test_adapters_share_the_base_batch_and_serve_what_their_merged_models_serve(
    model_versions, adapters
):
    expected = {"v1": await texts_alone(model_versions["v1"], "v1")}
    for name, folders in adapters.items():
        expected[name] = await texts_alone(folders["merged"], name)
    assert expected["a1"] != expected["v1"] and expected["a2"] != expected["a1"]

    engine = await started(model_versions["v1"], "v1")
    try:
        # loaded at once: the stacks one prepares may be out of date when the worker takes it
        await asyncio.gather(
            *(engine.load_version(name, str(f["adapter"])) for name, f in adapters.items())
        )
        assert set(engine.resident_versions) == {"v1", "a1", "a2"}
        assert len(engine.residents.admitting()) == 1  # one base, read once per step
        # the three versions' requests interleaved, in flight together, in the same steps
        handles = [
            (version, index, engine.submit(GenerationRequest(prompt, params, version=version)))
            for index, (prompt, params) in enumerate(PROMPTS)
            for version in ("a2", "v1", "a1")
        ]
        for version, index, handle in handles:
            result = await handle.result()
            assert result.model_version == version
            assert result.texts == expected[version][index], (version, index)
    finally:
        await engine.close()


async def test_an_adapter_version_is_served_as_the_active_one_and_swapped_without_a_reload(
    model_versions, adapters
):
    merged = await texts_alone(adapters["a2"]["merged"], "a2")
    engine = await started(adapters["a1"]["adapter"], "a1")
    try:
        batch = engine.residents.active
        assert batch.loaded.version == "v1" and engine.resident_versions == ("a1",)
        first = await engine.submit(GenerationRequest("Tokens", GREEDY)).result()
        assert first.model_version == "a1"
        await engine.swap("a2", str(adapters["a2"]["adapter"]))
        assert engine.residents.active is batch  # the base stayed; only an adapter was read
        handles = [engine.submit(GenerationRequest(p, s)) for p, s in PROMPTS]
        results = [await h.result() for h in handles]
        assert [r.texts for r in results] == merged
        assert {r.model_version for r in results} == {"a2"}
        assert engine.stats().model_version == "a2"
        assert "a1" not in batch.adapters  # no version names it, no row uses it: unloaded
    finally:
        await engine.close()


async def test_the_adapter_asked_for_least_recently_makes_room(model_versions, adapters, tmp_path):
    third = make_adapter(model_versions["v1"], tmp_path, "a3", seed=3)
    engine = await started(model_versions["v1"], "v1", max_adapters=2)
    try:
        await engine.load_version("a1", str(adapters["a1"]["adapter"]))
        await engine.load_version("a2", str(adapters["a2"]["adapter"]))
        await engine.submit(GenerationRequest("x", GREEDY, version="a1")).result()  # a2 is older
        await engine.load_version("a3", str(third["adapter"]))
        assert engine.resident_versions == ("v1", "a1", "a3")
        assert set(engine.residents.active.adapters.versions) == {"a1", "a3"}
        result = await engine.submit(GenerationRequest("x", GREEDY, version="a2")).result()
        assert result.model_version == "v1"  # not resident: the active version serves it
    finally:
        await engine.close()


@pytest.mark.parametrize(
    ("dtype", "weights", "tolerance"),
    [
        ("fp32", "modules", 1e-4),
        ("fp32", "prepack", 1e-4),
        ("bf16", "prepack", 0.05),
        ("bf16", "int8", 0.08),
    ],
)
def test_every_weight_layout_adds_the_adapter_update(
    model_versions, adapters, dtype, weights, tolerance
):
    """The runner's prefill and decode over the base plus an adapter agree with the merged
    model's, for the model's own modules, prepacked weights and int8 weights."""
    device = torch.device("cpu")
    base = load_model("v1", str(model_versions["v1"]), device, dtype)
    merged = load_model("a1", str(adapters["a1"]["merged"]), device, dtype)
    options = {"prepack": weights != "modules", "int8": weights == "int8"}
    runner, reference = GPT2Runner(base.model, **options), GPT2Runner(merged.model, **options)
    stack = AdapterStack(runner.layers, runner.dtype, device)
    stack.add(read_adapter("a1", adapters["a1"]["adapter"], runner.layers, runner.dtype, device))
    prompts = [[5, 9, 31, 7], [11, 3], [42]]
    slots = [stack.slot("a1"), stack.slot("v1"), stack.slot("a1")]  # the middle one: base only
    cache, plain_cache, merged_cache = (runner.new_cache(3) for _ in range(3))
    got = runner.prefill(prompts, cache, 0, stack.step(slots)).float()
    base_logits = runner.prefill(prompts, plain_cache, 0).float()
    merged_logits = reference.prefill(prompts, merged_cache, 0).float()
    expected = torch.stack([merged_logits[0], base_logits[1], merged_logits[2]])
    scale = float(expected.abs().max())
    assert float((got - expected).abs().max()) <= tolerance * scale
    tokens, positions = torch.tensor([1, 2, 3]), torch.tensor([4, 2, 1])
    got = runner.decode(tokens, positions, cache, slice(0, 3), stack.step(slots)).float()
    merged_next = reference.decode(tokens, positions, merged_cache, slice(0, 3)).float()
    base_next = runner.decode(tokens, positions, plain_cache, slice(0, 3)).float()
    expected = torch.stack([merged_next[0], base_next[1], merged_next[2]])
    assert float((got - expected).abs().max()) <= tolerance * float(expected.abs().max())


def test_stacks_are_built_off_the_worker_and_refused_when_out_of_date(model_versions, adapters):
    device = torch.device("cpu")
    runner = GPT2Runner(load_model("v1", str(model_versions["v1"]), device, "fp32").model)
    read = {
        n: read_adapter(n, f["adapter"], runner.layers, runner.dtype, device)
        for n, f in adapters.items()
    }
    stack = AdapterStack(runner.layers, runner.dtype, device)
    with_a1, with_a2 = stack.prepare(read["a1"]), stack.prepare(read["a2"])  # both from empty
    assert stack.install(with_a1, "a1") and stack.versions == ("a1",)
    assert not stack.install(with_a2, "a2")  # built without a1: refused, nothing changes
    assert stack.versions == ("a1",) and stack.built is with_a1
    assert stack.install(stack.prepare(read["a2"]), "a2") and stack.versions == ("a1", "a2")

    built = stack.built
    stack.remove(["a1"])  # no copies: a1's columns stay, no row selects them
    assert stack.built is built and "a1" not in stack and stack.slot("a1") == built.none
    assert stack.step([stack.slot("a1")]) is None
    stack.add(read["a1"])  # the next build leaves the unloaded columns out
    assert [a.version for a in stack.built.adapters] == ["a2", "a1"]


def test_an_adapter_the_engine_cannot_serve_is_refused_with_the_reason(model_versions, tmp_path):
    folders = make_adapter(model_versions["v1"], tmp_path, "dora", seed=4, use_dora=True)
    with pytest.raises(UnsupportedAdapter, match="DoRA"):
        read_adapter("dora", folders["adapter"], 2, torch.float32, torch.device("cpu"))
