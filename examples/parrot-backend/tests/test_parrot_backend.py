"""The parrot backend behind gpt2bot's chat use-cases: what a member would see and store."""

from __future__ import annotations

import pytest
from parrot_backend import ParrotBackend

from bot import plugin_api as gpt2bot


@pytest.fixture
async def parrot() -> ParrotBackend:
    return ParrotBackend(gpt2bot.ModelConfig(), "parrot-1", "/nowhere")


async def test_a_generation_streams_the_prompts_words_and_is_stored(tmp_path, parrot) -> None:
    origin = gpt2bot.Origin("test", "alice")
    async with gpt2bot.app_for_tests(tmp_path, backend=parrot) as app:
        chunks, finished = [], None
        params = {"max_new_tokens": 5, "seed": 7}
        async for event in app.chat.generate_stream(origin, "red green blue", params):
            if isinstance(event, gpt2bot.Chunk):
                chunks.append(event.text)
            elif isinstance(event, gpt2bot.Finished):
                finished = event
        assert finished is not None
        words = "".join(chunks).split()
        assert len(words) == 5 and set(words) <= {"red", "green", "blue"}
        stored = finished.generations[0]
        assert stored.output == "".join(chunks)
        assert stored.model_version == "parrot-1"
        again = await app.chat.generate(origin, "red green blue", params)
        assert again.generations[0].output == stored.output  # same seed, same answer


async def test_samples_differ_and_cancel_stops_a_request(parrot) -> None:
    request = gpt2bot.GenerationRequest(
        "one two three four", gpt2bot.SamplingParams(max_new_tokens=6, samples=2, seed=1)
    )
    result = await parrot.submit(request).result()
    assert len(result.texts) == 2 and result.texts[0] != result.texts[1]
    handle = parrot.submit(request)
    handle.cancel()
    with pytest.raises(gpt2bot.Cancelled):
        await handle.result()


async def test_it_swaps_versions_and_counts_words(parrot) -> None:
    await parrot.swap("parrot-2", "/elsewhere")
    assert parrot.model_version == "parrot-2"
    assert parrot.count_tokens("a b c") == 3
    assert parrot.tail_tokens("a b c d", 2) == "c d"
