"""Several versions resident in one engine (A/B serving): a request is served by the version it
names, exactly as an engine holding that version alone would serve it; unloads, promotions,
cancellation and time limits work for every version; the row budget is shared."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from pathlib import Path

import pytest

from model.backends.base import (
    BackendError,
    Cancelled,
    Chunk,
    GenerationRequest,
    SamplingParams,
    TimedOut,
)
from model.bootstrap import BootstrapConfig, build_bootstrap, bundled_corpus
from model.engine import Engine, EngineConfig
from model.engine.batch import Batch
from tests.model.conftest import TINY, loader

GREEDY = SamplingParams(temperature=0, max_new_tokens=30, repetition_penalty=1.0)
SEEDED = SamplingParams(
    temperature=0.9, top_k=40, top_p=0.9, repetition_penalty=1.2, max_new_tokens=25, seed=99
)
TWO_SAMPLES = SamplingParams(seed=4, samples=2, max_new_tokens=20)
PROMPTS = [
    ("A language model is", GREEDY),
    ("The attention mechanism", SEEDED),
    ("Data", TWO_SAMPLES),
]
# long enough to still be decoding when the test acts on it (stopped by the test)
LONG = SamplingParams(temperature=0, max_new_tokens=900, repetition_penalty=1.0)
WAIT_S = 60.0  # a generous bound on anything the tests wait for: a hang fails, never passes


@pytest.fixture(scope="module")
def other_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A third version with its own, smaller tokenizer (prompts tokenize differently)."""
    folder = tmp_path_factory.mktemp("other-tokenizer") / "v3"
    config = BootstrapConfig(**{**TINY.__dict__, "vocab_size": 300, "seed": 3, "steps": 5})
    build_bootstrap(folder, bundled_corpus(), config)
    return folder


async def started(path: Path, version: str = "v1", load=None, **config: object) -> Engine:
    settings = EngineConfig(metrics_log_interval_s=0, max_per_user=50, **config)  # type: ignore[arg-type]
    engine = Engine(settings, load or loader())
    await engine.start(version, str(path))
    return engine


def submit(engine: Engine, prompt: str, params: SamplingParams, version: str | None = None):
    return engine.submit(GenerationRequest(prompt, params, version=version))


async def first_chunk(handle) -> None:
    async def wait() -> None:
        async for event in handle:
            if isinstance(event, Chunk):
                return

    await asyncio.wait_for(wait(), WAIT_S)


async def rows_become(engine: Engine, rows: dict[str, int]) -> None:
    while engine.stats().running_rows_by_version != rows:
        await asyncio.sleep(0.005)


async def served_alone(path: Path, version: str) -> list[list[str]]:
    engine = await started(path, version)
    try:
        return [(await submit(engine, p, s).result()).texts for p, s in PROMPTS]
    finally:
        await engine.close()


async def test_each_resident_version_serves_what_it_serves_alone(model_versions, other_tokenizer):
    expected = {
        "v1": await served_alone(model_versions["v1"], "v1"),
        "v3": await served_alone(other_tokenizer, "v3"),
    }
    engine = await started(model_versions["v1"])
    try:
        await engine.load_version("v3", str(other_tokenizer))
        assert engine.resident_versions == ("v1", "v3")
        # both versions' requests interleaved, in flight together
        handles = [
            (index, version, submit(engine, prompt, params, version))
            for index, (prompt, params) in enumerate(PROMPTS)
            for version in ("v3", None, "v1")
        ]
        results = [(index, version, await h.result()) for index, version, h in handles]
        tokenizers = {v: engine.residents.serving(v).loaded.tokenizer for v in ("v1", "v3")}
    finally:
        await engine.close()
    for index, version, result in results:
        served = version or "v1"
        assert result.model_version == served
        assert result.texts == expected[served][index]
        prompt = PROMPTS[index][0]
        assert result.prompt_tokens == len(tokenizers[served].encode(prompt))
    # so each prompt was tokenized for the version that served it
    assert len({tuple(t.encode("The attention mechanism")) for t in tokenizers.values()}) == 2


async def test_a_version_not_resident_is_served_by_the_active_one(model_versions):
    engine = await started(model_versions["v1"])
    try:
        await engine.load_version("v2", str(model_versions["v2"]))
        named = await submit(engine, "A language model is", GREEDY, "v9").result()
        active = await submit(engine, "A language model is", GREEDY).result()
    finally:
        await engine.close()
    assert named.model_version == "v1"
    assert named.texts == active.texts


async def test_unloading_a_version_lets_its_running_requests_finish(model_versions):
    engine = await started(model_versions["v1"])
    params = SamplingParams(temperature=0, max_new_tokens=300, repetition_penalty=1.0)
    try:
        await engine.load_version("v2", str(model_versions["v2"]))
        v2_model = weakref.ref(engine.residents.others["v2"].loaded.model)
        expected = await submit(engine, "Models learn", params, "v2").result()
        running = submit(engine, "Models learn", params, "v2")
        await first_chunk(running)
        await engine.unload_version("v2")
        assert engine.resident_versions == ("v1",)
        after = await submit(engine, "Models learn", GREEDY, "v2").result()
        finished = await running.result()
        # the worker drops the drained batch right after its last row, then records metrics
        await asyncio.wait_for(rows_become(engine, {"v1": 0}), WAIT_S)
    finally:
        await engine.close()
    assert finished.model_version == "v2" and finished.texts == expected.texts
    assert finished.finish_reasons == expected.finish_reasons
    assert after.model_version == "v1"
    gc.collect()
    assert v2_model() is None  # its model was released once its last row finished


async def test_promoting_a_resident_version_needs_no_reload(model_versions):
    loads: list[str] = []
    load = loader()

    def counting(version: str, path: str):
        loads.append(version)
        return load(version, path)

    engine = await started(model_versions["v1"], load=counting)
    try:
        await engine.load_version("v2", str(model_versions["v2"]))
        await engine.load_version("v2", str(model_versions["v2"]))  # resident already: no-op
        assert loads == ["v1", "v2"]
        expected = await submit(engine, "Models learn", SEEDED).result()
        in_flight = submit(engine, "Models learn", SEEDED)
        await first_chunk(in_flight)
        await engine.swap("v2", str(model_versions["v2"]))
        assert loads == ["v1", "v2"]
        assert engine.resident_versions == ("v2",)
        assert engine.stats().model_version == "v2"
        new = await submit(engine, "Models learn", SEEDED).result()
        naming_old = await submit(engine, "Models learn", SEEDED, "v1").result()
        old = await in_flight.result()
    finally:
        await engine.close()
    assert old.model_version == "v1" and old.texts == expected.texts
    assert new.model_version == "v2" and naming_old.model_version == "v2"


async def test_the_row_budget_is_shared_by_every_resident_version(model_versions, monkeypatch):
    engine = await started(model_versions["v1"], max_batch=4)
    await engine.load_version("v2", str(model_versions["v2"]))
    steps: list[dict[str, int]] = []
    real_step = Batch.step

    def watched_step(self: Batch) -> None:
        rows: dict[str, int] = {}
        for batch in engine.residents.batches():
            rows[batch.loaded.version] = rows.get(batch.loaded.version, 0) + len(batch.rows)
        steps.append(rows)
        real_step(self)

    monkeypatch.setattr(Batch, "step", watched_step)
    try:
        handles = []
        for i in range(6):
            for version in ("v1", "v2"):
                params = SamplingParams(seed=i, samples=1 + i % 2, max_new_tokens=20 + 5 * i)
                handles.append((version, submit(engine, f"prompt {i}", params, version)))
        results = [(version, await h.result()) for version, h in handles]
        await asyncio.wait_for(rows_become(engine, {"v1": 0, "v2": 0}), WAIT_S)  # both resident
    finally:
        await engine.close()
    assert all(r.model_version == version for version, r in results)
    assert max(sum(rows.values()) for rows in steps) == 4  # full, never beyond
    assert any(rows["v1"] and rows["v2"] for rows in steps)  # both decoding side by side
    assert engine.stats().completed == 12


async def test_a_version_held_back_by_its_own_batch_does_not_hold_back_the_other(
    model_versions, monkeypatch
):
    engine = await started(model_versions["v1"], max_batch=4)
    await engine.load_version("v2", str(model_versions["v2"]))
    engine.residents.others["v2"].row_limit = 1  # as after an out-of-memory split
    admitted: list[str] = []
    real_admit = Batch.admit

    def watched_admit(self: Batch, requests) -> None:
        admitted.extend(r.request.prompt for r in requests)
        real_admit(self, requests)

    monkeypatch.setattr(Batch, "admit", watched_admit)
    short = SamplingParams(temperature=0, max_new_tokens=5)
    try:
        running = submit(engine, "a", LONG, "v2")
        await first_chunk(running)
        held_back = submit(engine, "b", short, "v2")  # first in the queue, its batch is full
        other = submit(engine, "c", short)
        served = await asyncio.wait_for(other.result(), WAIT_S)
        running.cancel()
        await held_back.result()
    finally:
        await engine.close()
    assert served.model_version == "v1"
    assert admitted == ["a", "c", "b"]


async def test_cancelling_requests_of_another_version(model_versions):
    engine = await started(model_versions["v1"], max_batch=1)
    try:
        await engine.load_version("v2", str(model_versions["v2"]))
        running = submit(engine, "a", LONG, "v2")
        waiting = submit(engine, "b", LONG, "v2")
        await first_chunk(running)
        running.cancel()
        waiting.cancel()
        for handle in (running, waiting):
            with pytest.raises(Cancelled):
                await handle.result()
        after = await submit(engine, "still serving", GREEDY, "v2").result()
    finally:
        await engine.close()
    assert after.model_version == "v2" and after.texts[0]
    assert engine.stats().cancelled == 2


async def test_timeout_of_a_request_of_another_version(model_versions, monkeypatch):
    engine = await started(model_versions["v1"], timeout_s=0.1)
    try:
        await engine.load_version("v2", str(model_versions["v2"]))
        real_decode = Batch.decode_rows

        def slow_decode(self, *args):  # a step slower than the whole time limit
            time.sleep(0.2)
            return real_decode(self, *args)

        monkeypatch.setattr(Batch, "decode_rows", slow_decode)
        handle = submit(engine, "The model", SamplingParams(max_new_tokens=50), "v2")
        with pytest.raises(TimedOut, match="took longer"):
            await handle.result()
    finally:
        await engine.close()
    assert engine.stats().failed == 1


async def test_admission_counts_the_work_of_every_version(model_versions, monkeypatch):
    engine = await started(model_versions["v1"], max_batch=2, max_wait_s=10_000)
    monkeypatch.setattr(engine.admission.throughput, "tokens_per_s", lambda: 10.0)
    try:
        await engine.load_version("v2", str(model_versions["v2"]))
        handles = [submit(engine, "a", LONG), submit(engine, "a", LONG, "v2")]
        for handle in handles:
            await first_chunk(handle)
        await asyncio.wait_for(rows_become(engine, {"v1": 1, "v2": 1}), WAIT_S)
        wait = engine.expected_wait_s()
        for handle in handles:
            handle.cancel()
    finally:
        await engine.close()
    assert wait > 90  # up to 900 tokens each at 10 tokens/s: more than one version's rows


async def test_changes_after_close_say_the_generator_is_not_running(model_versions):
    engine = await started(model_versions["v1"])
    await engine.close()
    with pytest.raises(BackendError, match="not running"):
        await engine.unload_version("v2")


async def test_a_change_that_fails_tells_its_caller_and_the_engine_serves_on(
    model_versions, monkeypatch
):
    engine = await started(model_versions["v1"])
    try:

        def broken(_self, _batch, _version=None) -> None:
            raise RuntimeError("the cache could not be allocated")

        monkeypatch.setattr("model.engine.residents.Residents.add", broken)
        with pytest.raises(BackendError, match="cache could not be allocated"):
            await asyncio.wait_for(engine.load_version("v2", str(model_versions["v2"])), WAIT_S)
        assert engine.resident_versions == ("v1",)
        result = await asyncio.wait_for(
            submit(engine, "A language model is", GREEDY).result(), WAIT_S
        )
        assert result.model_version == "v1" and result.completion_tokens[0] > 0
    finally:
        await engine.close()
