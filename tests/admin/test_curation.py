"""Curation: cleaning report, files, and ratings entering and leaving the dataset."""

from __future__ import annotations

import json

import pytest

from admin.curation import MAX_SAMPLE_CHARS, Curation
from storage import Database, GenerationRepository, NewGeneration


async def test_add_reports_what_was_skipped_and_why(curation: Curation) -> None:
    texts = [
        "  The   quick brown fox\njumps.  ",
        "The quick brown fox jumps.",  # same after whitespace cleaning
        "the QUICK brown fox, jumps!",  # near duplicate: case and punctuation
        "",
        "   ",
        "x" * (MAX_SAMPLE_CHARS + 1),
        "A second, different sample.",
    ]
    report = await curation.add("admin-1", texts)
    assert report.added == 2
    assert report.skipped == {"duplicates": 1, "near duplicates": 1, "empty": 2, "too long": 1}
    assert report.summary() == (
        "added 2, skipped 1 duplicates, skipped 1 near duplicates, skipped 2 empty, "
        "skipped 1 too long"
    )
    listed = await curation.recent()
    assert [item.text for item in listed] == [
        "A second, different sample.",
        "The quick brown fox jumps.",
    ]
    # adding again is recognised as duplicates of the stored dataset
    again = await curation.add("admin-1", ["The quick brown fox jumps."])
    assert again.added == 0 and again.skipped == {"duplicates": 1}


async def test_files_txt_and_jsonl(curation: Curation) -> None:
    txt = b"first line here\nsecond line here\n\nfirst line here\n"
    report = await curation.add_file("a", "data.txt", txt)
    assert (report.added, report.skipped) == (2, {"empty": 1, "duplicates": 1})
    jsonl = "\n".join(
        [json.dumps({"text": "from jsonl one"}), json.dumps({"other": 1}), "not json"]
    ).encode()
    report = await curation.add_file("a", "data.jsonl", jsonl)
    assert report.added == 1
    assert report.skipped == {"lines without text": 1, "unreadable lines": 1}
    with pytest.raises(ValueError, match=r"\.txt"):
        await curation.add_file("a", "data.csv", b"a,b")


async def test_remove_deactivates(curation: Curation) -> None:
    await curation.add("a", ["keep this sample", "drop this sample"])
    drop = next(i for i in await curation.recent() if i.text.startswith("drop"))
    await curation.remove("a", drop.id)
    assert [i.text for i in await curation.recent()] == ["keep this sample"]
    with pytest.raises(LookupError):
        await curation.remove("a", drop.id)


def _generation(db: Database, output: str) -> int:
    new = NewGeneration(
        platform="web",
        user_id="u",
        prompt="Once upon",
        output=output,
        params={},
        seed=1,
        model_version="tiny-1",
        prompt_tokens=2,
        completion_tokens=3,
        latency_s=0.1,
    )
    return GenerationRepository(db).add(new).id


async def test_ratings_include_and_exclude_generations(curation: Curation, db: Database) -> None:
    repo = GenerationRepository(db)
    liked = _generation(db, " a time there was a robot.")
    one_fan = _generation(db, " a time a cat slept.")
    repo.rate(liked, "r1", 1, "👍")
    repo.rate(liked, "r2", 1, "👍")
    repo.rate(one_fan, "r1", 1, "👍")  # net +1 from one rater: below the threshold

    items = await curation.recent()
    assert [(i.text, i.source, i.generation_id) for i in items] == [
        ("Once upon a time there was a robot.", "rating", liked)
    ]
    # ratings turn: a thumbs-down drops it out of the dataset
    repo.rate(liked, "r2", -1, "👎")
    assert await curation.recent() == []
    # and back in when they recover
    repo.rate(liked, "r2", 1, "👍")
    repo.rate(liked, "r3", 1, "👍")
    items = await curation.recent()
    assert [i.generation_id for i in items] == [liked]
    assert len(await db.run(curation.samples.active)) == 1
    # an admin's removal sticks, whatever the ratings say
    await curation.remove("admin", items[0].id)
    repo.rate(liked, "r4", 1, "👍")
    assert await curation.recent() == []


async def test_control_characters_never_reach_the_training_data(curation: Curation) -> None:
    report = await curation.add("admin-1", ["\x00" * 10, "Bell\x07 and NUL\x00 inside."])
    assert report.added == 1 and report.skipped == {"empty": 1}
    assert [item.text for item in await curation.recent()] == ["Bell and NUL inside."]
