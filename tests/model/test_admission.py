"""Admission by expected wait: queue while the estimated start is within ENGINE_MAX_WAIT_S,
refuse beyond with a retry-after that says when the work ahead will have shrunk enough.
Rates are injected, never timed."""

from __future__ import annotations

import asyncio

import pytest

from model.backends.base import Busy, GenerationRequest, Queued, SamplingParams
from model.engine.admission import Load, Throughput, check_wait, expected_wait_s, row_bucket
from tests.model.test_engine import FakeClock, started


def test_the_rate_of_a_full_batch_comes_from_the_largest_batch_measured():
    throughput = Throughput(max_rows=32)
    assert throughput.tokens_per_s() is None
    throughput.seed(32, lambda: 0.1)  # one timed step: 32 rows in 0.1 s, with a margin
    assert throughput.tokens_per_s() == pytest.approx(32 / 0.15)
    throughput.record(32, 0.05)  # measured iterations replace the guess
    for _ in range(50):
        throughput.record(30, 0.05 * 30 / 32)
    assert throughput.tokens_per_s() == pytest.approx(640, rel=0.01)
    small = Throughput(max_rows=32)
    small.record(4, 0.01)  # only small batches seen: their rate stands for the full batch
    assert small.tokens_per_s() == pytest.approx(400)
    assert [row_bucket(n) for n in (1, 2, 3, 17, 32)] == [1, 2, 4, 32, 32]


def test_a_request_queues_while_its_start_is_within_the_budget():
    idle = Load(running_tokens=0, waiting_tokens=0, waiting=0, free_rows=4)
    assert expected_wait_s(idle, samples=1, tokens_per_s=100.0) == 0.0  # joins at once
    busy = Load(running_tokens=1200, waiting_tokens=4800, waiting=400, free_rows=0)
    assert expected_wait_s(busy, samples=1, tokens_per_s=200.0) == pytest.approx(30.0)
    check_wait(busy, 1, 200.0, max_wait_s=60, max_queue=2048)  # 30 s ahead: queued

    with pytest.raises(Busy) as refused:
        check_wait(busy, 1, 50.0, max_wait_s=60, max_queue=2048)  # 120 s ahead
    assert refused.value.retry_after_s == 60  # by then 60 s of the work ahead is done
    assert "120 s" in str(refused.value) and "retry in 60 s" in str(refused.value)

    full = Load(running_tokens=0, waiting_tokens=120, waiting=10, free_rows=0)
    with pytest.raises(Busy) as guarded:  # the count limit still guards memory
        check_wait(full, 1, 100.0, max_wait_s=60, max_queue=10)
    assert guarded.value.retry_after_s >= 1
    check_wait(full, 1, None, max_wait_s=60, max_queue=11)  # nothing measured: count only


async def test_the_engine_refuses_what_would_start_too_late(model_versions, monkeypatch):
    engine = await started(model_versions["v1"], max_batch=1, max_wait_s=5, max_per_user=10)
    monkeypatch.setattr(engine.admission.throughput, "tokens_per_s", lambda: 10.0)
    long = SamplingParams(temperature=0, max_new_tokens=200, repetition_penalty=1.0)
    short = SamplingParams(temperature=0, max_new_tokens=20, repetition_penalty=1.0)
    try:
        first = engine.submit(GenerationRequest("one", long))
        while engine.stats().running_rows < 1 or engine.expected_wait_s() == 0:
            await asyncio.sleep(0.005)
        assert 5 < engine.expected_wait_s() <= 20  # up to 200 tokens at 10 tokens/s
        with pytest.raises(Busy) as refused:
            engine.submit(GenerationRequest("two", short))
        assert 0 < refused.value.retry_after_s <= 15
        first.cancel()
        while engine.stats().running_rows:
            await asyncio.sleep(0.005)
        await engine.submit(GenerationRequest("two", short)).result()  # room again
    finally:
        await engine.close()
    assert engine.stats().rejected == 1


async def test_a_burst_of_short_requests_waits_and_positions_are_throttled(model_versions):
    frozen = FakeClock(step=0.0)  # no time passes: only the first position update goes out
    engine = await started(model_versions["v1"], frozen, max_batch=4, max_per_user=1)
    params = SamplingParams(temperature=0, max_new_tokens=3)
    try:
        handles = [
            engine.submit(GenerationRequest(f"prompt {i}", params, user=f"member{i}"))
            for i in range(120)
        ]
        events = [[e async for e in handle] for handle in handles]
        results = [await handle.result() for handle in handles]
    finally:
        await engine.close()
    assert len(results) == 120 and engine.stats().rejected == 0  # none refused
    assert engine.stats().completed == 120
    updates = [sum(isinstance(e, Queued) for e in handle_events) for handle_events in events]
    assert max(updates) <= 2  # the answer to submit, then at most one update per interval
