"""Curation: the texts the model is fine-tuned on, admin-added and rating-derived.

Cleaning is pure functions (whitespace, empty and over-long lines, exact and near duplicates);
`Curation` stores what survives and reports the rest ("added 120, skipped 3 duplicates, 1 too
long"), and keeps rating-derived samples in line with the ratings.

Preference training (`TRAIN_OBJECTIVE=kto|sft+kto`) also learns from what raters turned down.
Its 👍 rows are the approved rating-derived samples, so they have passed the whole safe-learning
path (rule, moderation, review). Its 👎 rows are outputs the mirror rule turns down (distinct
raters, no self-ratings, a Wilson bound, a daily cap on 👎; kept-out generations excluded as
for 👍), without moderation or review: the model is only ever pushed away from them, and
pushing away from a flagged text is what moderation wants anyway. Admin-added texts have no
prompt to split off, so they stay SFT data.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from admin.config import LearningConfig
from admin.errors import Invalid, Unknown
from admin.moderation import Moderator
from admin.results import CurationReport
from storage import (
    CuratedSampleRecord,
    CuratedSampleRepository,
    Database,
    NotFound,
    RatingRule,
)
from storage.rating_rule import failing, passing

MAX_SAMPLE_CHARS = 2000  # longer lines are usually pasted logs, not training text
MIN_SAMPLE_CHARS = 3
MAX_FILE_BYTES = 20_000_000
FILE_KINDS = (".txt", ".jsonl")

_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # whitespace ones stay
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


@dataclass(frozen=True)
class PreferenceRow:
    """A rated output for preference training: liked (👍) or turned down (👎)."""

    generation_id: int
    prompt: str
    completion: str
    liked: bool


@dataclass(frozen=True)
class Cleaned:
    texts: list[str]
    skipped: Counter[str]

    def report(self) -> CurationReport:
        return CurationReport(added=len(self.texts), skipped=dict(self.skipped))


def normalize(text: str) -> str:
    """Drop control characters (NUL and friends: invisible, and PostgreSQL refuses NUL), then
    collapse runs of whitespace (newlines included) to one space and trim."""
    return _SPACE.sub(" ", _CONTROL.sub("", text)).strip()


def near_key(text: str) -> str:
    """Texts differing only in case, punctuation or spacing share this key."""
    return _NOT_WORD.sub(" ", text.casefold()).strip()


def clean(
    texts: Iterable[str], existing: Iterable[str] = (), max_chars: int = MAX_SAMPLE_CHARS
) -> Cleaned:
    """Keep the texts worth training on; count the others by reason.

    Duplicates are checked against each other and against `existing` (the active dataset).
    """
    seen_exact = {normalize(t) for t in existing}
    seen_near = {near_key(t) for t in seen_exact}
    kept: list[str] = []
    skipped: Counter[str] = Counter()
    for raw in texts:
        text = normalize(raw)
        if len(text) < MIN_SAMPLE_CHARS:
            skipped["empty"] += 1
        elif len(text) > max_chars:
            skipped["too long"] += 1
        elif text in seen_exact:
            skipped["duplicates"] += 1
        elif near_key(text) in seen_near:
            skipped["near duplicates"] += 1
        else:
            kept.append(text)
            seen_exact.add(text)
            seen_near.add(near_key(text))
    return Cleaned(kept, skipped)


def dataset_snapshot(
    samples: list[CuratedSampleRecord], rows: list[PreferenceRow]
) -> list[dict[str, Any]]:
    """What a training run keeps of its data: each sample, and each rated output it learns
    preferences from (with the text a member's data deletion scrubs from snapshots)."""
    kept = [{"id": s.id, "source": s.source, "text": s.text} for s in samples]
    return kept + [
        {
            "generation_id": r.generation_id,
            "source": "liked" if r.liked else "disliked",
            "text": r.prompt + r.completion,
        }
        for r in rows
    ]


def parse_file(filename: str, content: bytes) -> tuple[list[str], Counter[str]]:
    """Samples of a `.txt` (one per line) or `.jsonl` (a `text` field per line) file.

    Raises `Invalid` with what to do for other kinds, undecodable or oversized files.
    """
    kind = next((k for k in FILE_KINDS if filename.lower().endswith(k)), None)
    if kind is None:
        raise Invalid(
            f"{filename}: unsupported file type; upload a .txt (one sample per line) "
            'or a .jsonl file (one JSON object with a "text" field per line)'
        )
    if len(content) > MAX_FILE_BYTES:
        raise Invalid(f"{filename}: larger than {MAX_FILE_BYTES // 1_000_000} MB; split it")
    try:
        body = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid(f"{filename}: not UTF-8 text; save it as UTF-8 and retry") from None
    lines = body.splitlines()
    if kind == ".txt":
        return lines, Counter()
    texts, bad = [], Counter[str]()
    for line in lines:
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            bad["unreadable lines"] += 1
            continue
        text = value.get("text") if isinstance(value, dict) else None
        if isinstance(text, str):
            texts.append(text)
        else:
            bad["lines without text"] += 1
    return texts, bad


class Curation:
    """The `CurationService`: samples in the database, cleaned on the way in."""

    def __init__(self, db: Database, config: LearningConfig, moderator: Moderator) -> None:
        self.db, self.config, self.moderator = db, config, moderator
        self.samples = CuratedSampleRepository(db)

    @property
    def rule(self) -> RatingRule:
        c = self.config
        return RatingRule(
            c.rating_min_score,
            c.rating_min_raters,
            c.rating_min_lower_bound,
            c.rating_daily_cap,
            c.rating_min_account_days,
        )

    async def add(self, actor: str, texts: list[str], origin: str | None = None) -> CurationReport:
        """Clean, screen and store `texts`; `origin`: the server line they are for."""
        existing = await self.db.run(self.samples.active_texts)
        cleaned = clean(texts, existing)
        kept = [t for t in cleaned.texts if not (await self.moderator.check(t)).flagged]
        if len(kept) < len(cleaned.texts):
            cleaned.skipped["flagged by moderation"] += len(cleaned.texts) - len(kept)
        if kept:
            await self.db.run(self.samples.add_many, kept, actor, "admin", origin)
        return Cleaned(kept, cleaned.skipped).report()

    async def add_file(
        self, actor: str, filename: str, content: bytes, origin: str | None = None
    ) -> CurationReport:
        texts, unreadable = parse_file(filename, content)
        report = await self.add(actor, texts, origin)
        return CurationReport(report.added, {**report.skipped, **unreadable})

    async def recent(self, limit: int = 20) -> list[CuratedSampleRecord]:
        await self.sync_ratings()
        return await self.db.run(self.samples.recent, limit)

    async def remove(self, actor: str, sample_id: int) -> None:
        try:
            await self.db.run(self.samples.deactivate, sample_id, actor)
        except NotFound:
            raise Unknown(f"There is no curated sample {sample_id}.") from None

    async def sync_ratings(self) -> tuple[int, int]:
        """Bring rating-derived samples in line with the current ratings (added, dropped):
        the collusion-resistant rule (`storage.rating_rule`), then moderation of each text;
        new samples wait for review unless `CURATION_AUTO_APPROVE`."""
        rows = await self.db.run(self.samples.rating_rows)
        chosen = passing(rows, self.rule)
        pairs = await self.db.run(self.samples.pairs_of, chosen)
        texts = {gid: prompt + output for gid, (prompt, output) in pairs.items()}
        for gid, text in texts.items():
            if (await self.moderator.check(text)).flagged:
                del chosen[gid]
        return await self.db.run(self.samples.apply_ratings, chosen, self.config.auto_approve)

    async def pending(self, limit: int = 20) -> list[CuratedSampleRecord]:
        """The review queue: rating-derived samples waiting for an admin, oldest first."""
        await self.sync_ratings()
        return await self.db.run(self.samples.pending, limit)

    async def review(self, actor: str, sample_id: int, approve: bool) -> CuratedSampleRecord:
        """Approve or reject a queued sample (`Unknown` when none is waiting)."""
        try:
            return await self.db.run(self.samples.review, sample_id, actor, approve)
        except NotFound:
            raise Unknown(f"No curated sample {sample_id} is waiting for review.") from None

    async def training_set(
        self, include_ratings: bool, line: str | None = None
    ) -> list[CuratedSampleRecord]:
        """The active samples `line` trains on (None: the shared line; see storage.curation),
        rating-derived ones synced first, or left out."""
        if include_ratings:
            await self.sync_ratings()
        samples = await self.db.run(self.samples.active, line)
        return samples if include_ratings else [s for s in samples if s.source != "rating"]

    async def preference_set(
        self, samples: list[CuratedSampleRecord], line: str | None = None
    ) -> list[PreferenceRow]:
        """Rated outputs for preference training, beside `samples` (the training set just
        taken, so both come from one sync): 👍 its rating-derived samples, 👎 the outputs
        the mirror rule turns down (see the module docstring). Oldest generation first."""
        liked = {s.generation_id for s in samples if s.source == "rating" and s.generation_id}
        disliked = failing(await self.db.run(self.samples.rating_rows, line), self.rule)
        pairs = await self.db.run(self.samples.pairs_of, sorted(liked | set(disliked)))
        return [
            PreferenceRow(gid, prompt, output, gid in liked)
            for gid, (prompt, output) in sorted(pairs.items())
            if prompt and output  # a member's deletion blanks prompts derived from theirs
        ]

    async def changed_since(self, moment: datetime, ratings: bool = False) -> bool:
        """Whether anything was curated (or removed) after `moment`; with `ratings`, also
        whether any rating was given or changed (new 👎 teach preference training)."""
        changed = await self.db.run(self.samples.last_change)
        if changed is not None and changed > moment:
            return True
        rated = await self.db.run(self.samples.last_rating) if ratings else None
        return rated is not None and rated > moment
