"""`gpt2bot export --reviews` and `--win-rates`: the owners' blind-review verdicts and the win
rate per pair of versions, as JSONL or CSV, beside the generations' own export."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from bot.cli import main
from storage import Database, NewReviewItem, ReviewRepository, upgrade


def verdicts(db: Database) -> None:
    reviews = ReviewRepository(db)
    for (a, b), verdict in [(("v2", "v1"), "a"), (("v1", "v2"), "b"), (("v1", "v2"), "tie")]:
        item = NewReviewItem(
            "A language model is", "fixed", a, b, f" by {a}", f" by {b}", {"top_k": 50}, 9, "owner"
        )
        reviews.decide(reviews.add(item).id, verdict, "owner-1")
    reviews.add(NewReviewItem("Waiting", "fixed", "v1", "v2", "x", "y", {}, 1, "owner"))


def test_verdicts_and_win_rates_are_exported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / ".env"
    env.write_text(f"DATABASE_URL=sqlite:///{tmp_path / 'bot.db'}\nLOG_LEVEL=WARNING\n")
    db = Database(f"sqlite:///{tmp_path / 'bot.db'}")
    upgrade(db.engine)
    verdicts(db)
    out = tmp_path / "verdicts.csv"

    assert (
        main(["--env-file", str(env), "export", "--reviews", "--format", "csv", "--out", str(out)])
        == 0
    )
    assert "wrote 3 verdicts" in capsys.readouterr().err
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["version_a"], r["verdict"], r["winner"]) for r in rows] == [
        ("v2", "a", "v2"),
        ("v1", "b", "v2"),
        ("v1", "tie", ""),
    ]
    assert rows[0]["reviewer"] == "owner-1" and json.loads(rows[0]["params"]) == {"top_k": 50}
    assert rows[0]["output_a"] == " by v2" and rows[0]["seed"] == "9"

    assert main(["--env-file", str(env), "export", "--win-rates"]) == 0
    (rate,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (rate["first"], rate["second"], rate["judged"], rate["ties"]) == ("v1", "v2", 3, 1)
    assert (rate["first_wins"], rate["second_wins"]) == (0, 2)
    assert (rate["first_rate"], rate["second_rate"]) == (0.1667, 0.8333)

    assert main(["--env-file", str(env), "export"]) == 0  # the generations: none, no items
    assert capsys.readouterr().out == ""
    db.dispose()
