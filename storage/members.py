"""A member's own data: everything they wrote and rated, to export or to delete.

Deleting removes the text of their generations (the rows stay, redacted, so the conversation
chains and other people's ratings of other outputs keep their shape), the prompts of other
members' 🔁/⏩, replies and story-thread turns whose chain held their text (those outputs
stay: they are the others'), their ratings, every curated sample that came from them (their
rated outputs and samples they added), their texts in training-run dataset snapshots,
blind-review items made from their prompts (the owners' verdicts on them stay), and the detail
of their audited admin commands; it marks them so future training skips them. Model versions
already trained are files on disk and are not retrained by this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from storage.db import Database
from storage.models import (
    AuditEntry,
    CuratedSample,
    DataDeletion,
    Generation,
    Rating,
    TrainingRun,
)
from storage.reviews import redact_reviews


@dataclass(frozen=True)
class DeletionReport:
    generations: int  # redacted
    ratings: int  # deleted
    curated_samples: int  # deleted


def _generation_row(row: Generation) -> dict[str, Any]:
    return {
        "type": "generation",
        "id": row.id,
        "conversation_id": row.conversation_id,
        "parent_id": row.parent_id,
        "kind": row.kind,
        "server_id": row.guild_id,
        "channel_id": row.channel_id,
        "prompt": row.prompt,
        "output": row.output,
        "params": row.params,
        "model_version": row.model_version,
        "created_at": row.created_at.isoformat(),
    }


class MemberDataRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def export(self, platform: str, user_id: str) -> list[dict[str, Any]]:
        """Their generations and their ratings (with the rated output), oldest first."""
        with self._db.session() as session:
            mine = select(Generation).where(
                Generation.platform == platform, Generation.user_id == user_id
            )
            rows = [_generation_row(g) for g in session.scalars(mine.order_by(Generation.id))]
            rated = (
                select(Rating, Generation)
                .join(Generation, Rating.generation_id == Generation.id)
                .where(Generation.platform == platform, Rating.rater_id == user_id)
                .order_by(Rating.id)
            )
            for rating, generation in session.execute(rated):
                rows.append(
                    {
                        "type": "rating",
                        "generation_id": generation.id,
                        "emoji": rating.emoji,
                        "score": rating.score,
                        "output": generation.output,
                        "created_at": rating.created_at.isoformat(),
                    }
                )
            return rows

    def delete(self, platform: str, user_id: str) -> DeletionReport:
        """Remove their text and ratings everywhere in the database (one transaction)."""
        with self._db.session() as session:
            mine = select(Generation).where(
                Generation.platform == platform, Generation.user_id == user_id
            )
            generations = list(session.scalars(mine))
            ids = [g.id for g in generations]
            texts = {g.prompt + g.output for g in generations} | {g.prompt for g in generations}
            samples = select(CuratedSample).where(
                CuratedSample.generation_id.in_(ids) | (CuratedSample.added_by == user_id)
            )
            for sample in session.scalars(samples):
                texts.add(sample.text)
            curated = session.execute(
                delete(CuratedSample).where(
                    CuratedSample.generation_id.in_(ids) | (CuratedSample.added_by == user_id)
                )
            ).rowcount  # type: ignore[attr-defined]
            for generation in generations:
                generation.prompt, generation.output, generation.redacted = "", "", True
            redact_reviews(session, ids)
            texts |= _blank_derived_prompts(session, generations, user_id)
            platform_ids = select(Generation.id).where(Generation.platform == platform)
            ratings = session.execute(
                delete(Rating).where(
                    Rating.rater_id == user_id, Rating.generation_id.in_(platform_ids)
                )
            ).rowcount  # type: ignore[attr-defined]
            _scrub_snapshots(session, texts)
            for entry in session.scalars(
                select(AuditEntry).where(
                    AuditEntry.actor == user_id, AuditEntry.platform == platform
                )
            ):
                entry.detail = {"redacted": True}
            if _deletion_id(session, platform, user_id) is None:
                session.add(DataDeletion(platform=platform, user_id=user_id))
            return DeletionReport(len(generations), int(ratings or 0), int(curated or 0))

    def delete_generation(self, platform: str, server_id: str, generation_id: int) -> Any:
        """A server admin's removal of one generation made in their server: its text goes, its
        ratings and curated samples with it. Returns the removed generation's (channel id,
        message id), or raises `LookupError` when the server has no such generation."""
        with self._db.session() as session:
            row = session.get(Generation, generation_id)
            if row is None or row.platform != platform or row.guild_id != server_id:
                raise LookupError(f"There is no generation #{generation_id} in this server.")
            texts = {row.prompt + row.output}
            session.execute(delete(CuratedSample).where(CuratedSample.generation_id == row.id))
            session.execute(delete(Rating).where(Rating.generation_id == row.id))
            row.prompt, row.output, row.redacted = "", "", True
            redact_reviews(session, [row.id])
            _scrub_snapshots(session, texts)
            return row.channel_id, row.message_id

    def deleted(self, platform: str, user_id: str) -> bool:
        """Whether this member deleted their data (and so opted out of training)."""
        with self._db.session() as session:
            return _deletion_id(session, platform, user_id) is not None


def _deletion_id(session: Any, platform: str, user_id: str) -> int | None:
    query = select(DataDeletion.id).where(
        DataDeletion.platform == platform, DataDeletion.user_id == user_id
    )
    return session.scalar(query)


def _blank_derived_prompts(session: Any, generations: list[Generation], user_id: str) -> set[str]:
    """Other members' 🔁, ⏩, replies and story-thread messages after this member's text
    start from it (the chain is the prompt): blank
    those prompts (their outputs are the other members' own) and drop their training samples.
    Returns the texts those samples had, to scrub from snapshots too."""
    conversations = {g.conversation_id for g in generations}
    if not conversations:
        return set()
    derived = select(Generation).where(
        Generation.conversation_id.in_(conversations),
        Generation.user_id != user_id,
        Generation.kind.in_(("regenerate", "continue", "reply")),
    )
    rows = list(session.scalars(derived))
    texts = {row.prompt + row.output for row in rows}
    ids = [row.id for row in rows]
    session.execute(delete(CuratedSample).where(CuratedSample.generation_id.in_(ids)))
    for row in rows:
        row.prompt = ""
    return texts


def _scrub_snapshots(session: Any, texts: set[str]) -> None:
    """Drop their texts from the dataset snapshots that training runs keep."""
    if not texts:
        return
    for run in session.scalars(select(TrainingRun)):
        snapshot = list(run.dataset_snapshot or [])
        kept = [item for item in snapshot if item.get("text") not in texts]
        if len(kept) != len(snapshot):
            run.dataset_snapshot = kept
