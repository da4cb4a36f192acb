import csv
import io
import json

import pytest

from bot.chat import Finished, Origin
from bot.export import write_export
from bot.params import InvalidRequest
from model.backends.base import Chunk, Queued
from storage import GenerationRepository

ALICE = Origin(platform="web", user_id="alice", channel_id="c1")


async def test_generate_streams_then_stores_with_params_and_version(app):
    events = [e async for e in app.chat.generate_stream(ALICE, "  A language model ", {"seed": 3})]
    assert isinstance(events[0], Queued)
    finished = events[-1]
    assert isinstance(finished, Finished)
    chunks = "".join(e.text for e in events if isinstance(e, Chunk))
    (generation,) = finished.generations
    assert generation.output == chunks == finished.result.texts[0]
    assert generation.prompt == "A language model"
    assert generation.seed == 3 and generation.params["temperature"] == 0.8
    assert generation.model_version == "tiny-1"
    assert generation.platform == "web" and generation.channel_id == "c1"
    assert generation.completion_tokens > 0


async def test_same_seed_same_output_and_greedy_is_deterministic(app):
    first = await app.chat.generate(ALICE, "Training data", {"seed": 11, "max_new_tokens": 12})
    again = await app.chat.generate(ALICE, "Training data", {"seed": 11, "max_new_tokens": 12})
    assert first.generations[0].output == again.generations[0].output
    greedy = {"temperature": 0, "max_new_tokens": 12}
    a = await app.chat.generate(ALICE, "The transformer", {**greedy, "seed": 1})
    b = await app.chat.generate(ALICE, "The transformer", {**greedy, "seed": 2})
    assert a.generations[0].output == b.generations[0].output


async def test_samples_are_separate_generations_in_one_conversation(app):
    finished = await app.chat.generate(ALICE, "Fine-tuning", {"samples": 3, "seed": 5})
    seeds = [g.seed for g in finished.generations]
    assert seeds == [5, 6, 7]
    assert len({g.conversation_id for g in finished.generations}) == 1
    assert [g.sample_index for g in finished.generations] == [0, 1, 2]


async def test_invalid_input_is_refused_before_anything_runs(app):
    with pytest.raises(InvalidRequest, match="temperature must be"):
        await app.chat.generate(ALICE, "hi", {"temperature": 3})
    with pytest.raises(InvalidRequest, match="empty"):
        await app.chat.generate(ALICE, " ", {})
    assert GenerationRepository(app.db).count() == 0


async def test_regenerate_makes_a_sibling_with_a_new_seed(app):
    root = (await app.chat.generate(ALICE, "Sampling", {"seed": 1})).generations[0]
    child = (await app.chat.continue_(root.id, ALICE)).generations[0]
    sibling = (await app.chat.regenerate(child.id, ALICE)).generations[0]
    assert sibling.kind == "regenerate"
    assert sibling.parent_id == child.parent_id == root.id
    assert sibling.prompt == child.prompt and sibling.seed != child.seed
    assert sibling.params == child.params
    chain = await app.chat.conversation(root.conversation_id)
    assert [g.id for g in chain] == [root.id, child.id, sibling.id]


async def test_continue_uses_the_text_so_far_cut_to_fit_the_context(app):
    root = (await app.chat.generate(ALICE, "Attention", {"seed": 2})).generations[0]
    child = (await app.chat.continue_(root.id, ALICE)).generations[0]
    assert child.kind == "continue" and child.parent_id == root.id
    assert child.prompt == root.prompt + root.output
    assert child.conversation_id == root.conversation_id
    long_prompt = "token " * 1500
    assert app.backend.count_tokens(long_prompt) > 1024
    kept = app.backend.tail_tokens(long_prompt, 100)
    assert long_prompt.endswith(kept) and app.backend.count_tokens(kept) <= 100


async def test_too_long_prompt_is_cut_from_the_left_and_says_so(app):
    prompt = "q#" * 1000  # 2000 characters the tiny tokenizer never merged: ~2000 tokens
    assert app.backend.count_tokens(prompt) > 1024
    finished = await app.chat.generate(ALICE, prompt, {"max_new_tokens": 100, "seed": 1})
    result = finished.result
    assert result.prompt_truncated
    assert result.prompt_tokens == 1024 - 100
    assert prompt.endswith(result.prompt)
    assert finished.generations[0].prompt_truncated


async def test_ratings_replace_and_remove(app):
    generation = (await app.chat.generate(ALICE, "Ratings", {"seed": 1})).generations[0]
    assert await app.chat.rate(generation.id, "bob", "👍") == 1
    assert await app.chat.rate(generation.id, "bob", "👎") == -1
    assert [(r.rater_id, r.score) for r in (await app.chat.get(generation.id)).ratings] == [
        ("bob", -1)
    ]
    assert await app.chat.unrate(generation.id, "bob", "👎")
    assert (await app.chat.get(generation.id)).ratings == []
    with pytest.raises(InvalidRequest, match="not a rating"):
        await app.chat.rate(generation.id, "bob", "🎉")
    with pytest.raises(InvalidRequest, match="no generation #999"):
        await app.chat.rate(999, "bob", "👍")


async def test_export_contains_ratings_in_both_formats(app):
    generation = (await app.chat.generate(ALICE, "Export me", {"seed": 4})).generations[0]
    await app.chat.rate(generation.id, "bob", "👍")
    await app.chat.rate(generation.id, "eve", "👎")
    await app.chat.rate(generation.id, "dan", "👍")
    records = list(GenerationRepository(app.db).iter_all())

    jsonl = io.StringIO()
    assert write_export(records, jsonl, "jsonl") == 1
    row = json.loads(jsonl.getvalue())
    assert row["prompt"] == "Export me" and row["model_version"] == "tiny-1"
    assert row["params"]["top_k"] == 50 and row["seed"] == 4
    assert (row["ratings_up"], row["ratings_down"], row["net_score"]) == (2, 1, 1)
    assert {r["rater_id"] for r in row["ratings"]} == {"bob", "eve", "dan"}

    table = io.StringIO()
    write_export(records, table, "csv")
    (csv_row,) = list(csv.DictReader(io.StringIO(table.getvalue())))
    assert csv_row["output"] == generation.output
    assert json.loads(csv_row["params"])["temperature"] == 0.8
    assert len(json.loads(csv_row["ratings"])) == 3 and csv_row["net_score"] == "1"
