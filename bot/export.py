"""`gpt2bot export`: every generation with its prompt, output, parameters, model version (and
A/B experiment and arm), platform ids, timestamps and ratings, as JSONL (one object per line) or
CSV; with `--reviews` the owners' blind-review verdicts instead, with `--win-rates` the win rate
per pair of versions.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import Any, TextIO

from storage import Database, GenerationRecord, PairWinRate, ReviewItemRecord, ReviewRepository

FORMATS = ("jsonl", "csv")
REVIEW_EXPORTS = ("verdicts", "win-rates")
RECORD_COLUMNS = [  # read from the record as they are
    "id",
    "conversation_id",
    "parent_id",
    "kind",
    "platform",
    "guild_id",
    "channel_id",
    "user_id",
    "message_id",
    "prompt",
    "output",
    "params",
    "seed",
    "sample_index",
    "model_version",
    "prompt_tokens",
    "completion_tokens",
    "latency_s",
    "prompt_truncated",
    "created_at",
    "experiment_id",
    "arm",
    "template",  # the server's prompt template the prompt was made with (the prompt has it)
]
CSV_COLUMNS = [*RECORD_COLUMNS, "ratings_up", "ratings_down", "net_score", "ratings"]
REVIEW_COLUMNS = [
    "id",
    "source",
    "prompt",
    "version_a",  # shown as "A"
    "version_b",
    "output_a",
    "output_b",
    "verdict",  # a|b|tie: the side chosen
    "winner",  # the version judged better; empty for a tie
    "reviewer",
    "params",
    "seed",
    "generation_id",  # where a recent prompt came from
    "redacted",  # its author deleted it: prompt and outputs are empty
    "created_at",
    "decided_at",
]
WIN_RATE_COLUMNS = [
    "first",  # the pair's versions in alphabetical order
    "second",
    "judged",
    "first_wins",
    "second_wins",
    "ties",
    "first_rate",  # (wins + ties / 2) / judged
    "second_rate",
]


def generation_row(record: GenerationRecord) -> dict[str, Any]:
    """A flat, JSON-ready view of one generation and its ratings."""
    row = {column: getattr(record, column, None) for column in RECORD_COLUMNS}
    row["created_at"] = record.created_at.isoformat()
    row["ratings_up"] = sum(1 for r in record.ratings if r.score > 0)
    row["ratings_down"] = sum(1 for r in record.ratings if r.score < 0)
    row["net_score"] = record.net_score
    row["ratings"] = [
        {
            "rater_id": r.rater_id,
            "score": r.score,
            "emoji": r.emoji,
            "created_at": r.created_at.isoformat(),
            "updated_at": r.updated_at.isoformat(),
        }
        for r in record.ratings
    ]
    return row


def review_row(item: ReviewItemRecord) -> dict[str, Any]:
    """One judged review item, JSON-ready."""
    row = {column: getattr(item, column) for column in REVIEW_COLUMNS}
    row["created_at"] = item.created_at.isoformat()
    row["decided_at"] = item.decided_at.isoformat() if item.decided_at else None
    return row


def win_rate_row(rate: PairWinRate) -> dict[str, Any]:
    """One pair of versions' verdicts and win rates (rounded to 4 places)."""
    row = {column: getattr(rate, column) for column in WIN_RATE_COLUMNS}
    row["first_rate"], row["second_rate"] = round(rate.first_rate, 4), round(rate.second_rate, 4)
    return row


def write_rows(rows: Iterable[dict[str, Any]], out: TextIO, fmt: str, columns: list[str]) -> int:
    """Write flat rows as JSONL or CSV (lists and dicts JSON-encoded); returns the count."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use {' or '.join(FORMATS)}")
    count = 0
    writer = csv.DictWriter(out, fieldnames=columns) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    for row in rows:
        if writer is None:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            writer.writerow(
                {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
            )
        count += 1
    return count


def write_export(records: Iterable[GenerationRecord], out: TextIO, fmt: str = "jsonl") -> int:
    """Write `records` to `out`; returns how many were written."""
    return write_rows((generation_row(r) for r in records), out, fmt, CSV_COLUMNS)


def write_reviews(db: Database, what: str, out: TextIO, fmt: str = "jsonl") -> int:
    """Write the judged review items (`what="verdicts"`) or the win rates per pair of versions
    (`"win-rates"`); blocking (call through `Database.run`)."""
    reviews = ReviewRepository(db)
    if what == "win-rates":
        rates = (win_rate_row(r) for r in reviews.win_rates())
        return write_rows(rates, out, fmt, WIN_RATE_COLUMNS)
    if what != "verdicts":
        raise ValueError(f"export reviews as {' or '.join(REVIEW_EXPORTS)}, not {what!r}")
    return write_rows((review_row(i) for i in reviews.iter_decided()), out, fmt, REVIEW_COLUMNS)
