"""`gpt2bot export`: every generation with its prompt, output, parameters, model version (and
A/B experiment and arm), platform ids, timestamps and ratings, as JSONL (one object per line) or
CSV.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import Any, TextIO

from storage import GenerationRecord

FORMATS = ("jsonl", "csv")
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
]
CSV_COLUMNS = [*RECORD_COLUMNS, "ratings_up", "ratings_down", "net_score", "ratings"]


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


def write_export(records: Iterable[GenerationRecord], out: TextIO, fmt: str = "jsonl") -> int:
    """Write `records` to `out`; returns how many were written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use {' or '.join(FORMATS)}")
    count = 0
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    for record in records:
        row = generation_row(record)
        if writer is None:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            writer.writerow(
                {**row, "params": json.dumps(row["params"]), "ratings": json.dumps(row["ratings"])}
            )
        count += 1
    return count
