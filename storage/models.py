"""SQLAlchemy 2.0 ORM tables. ORM objects never leave `storage/`: repositories return records.

Changing a table means adding an Alembic revision under `storage/migrations/versions`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; they were stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Conversation(Base):
    """A chain of generations: regenerate makes siblings, continue makes children."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Generation(Base):
    __tablename__ = "generations"
    __table_args__ = (Index("ix_generations_platform_channel", "platform", "channel_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("generations.id"))
    kind: Mapped[str] = mapped_column(String(16), default="new")  # new|regenerate|continue|reply
    platform: Mapped[str] = mapped_column(String(32))
    guild_id: Mapped[str | None] = mapped_column(String(64))
    channel_id: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    message_id: Mapped[str | None] = mapped_column(String(64), index=True)
    prompt: Mapped[str] = mapped_column(Text)
    output: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(BigInteger)
    sample_index: Mapped[int] = mapped_column(Integer, default=0)
    model_version: Mapped[str] = mapped_column(String(64), index=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    latency_s: Mapped[float] = mapped_column(Float)
    prompt_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    redacted: Mapped[bool] = mapped_column(Boolean, default=False)  # its author deleted their data
    flagged: Mapped[str | None] = mapped_column(Text)  # why moderation withheld the output
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)  # reported often enough
    # the A/B experiment it was served in, and by which arm (control|candidate)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id"), index=True)
    arm: Mapped[str | None] = mapped_column(String(16))
    # the server's prompt template the prompt was made with ("{prompt}" marks the member's text)
    template: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class Rating(Base):
    """One rating per rater per generation; a new reaction replaces it."""

    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("generation_id", "rater_id", name="uq_rating_rater"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    generation_id: Mapped[int] = mapped_column(
        ForeignKey("generations.id", ondelete="CASCADE"), index=True
    )
    rater_id: Mapped[str] = mapped_column(String(64))
    score: Mapped[int] = mapped_column(Integer)  # +1 or -1
    emoji: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    parent: Mapped[str | None] = mapped_column(String(64))
    # an adapter version's full base version (the engine loads it under the adapter); NULL: full
    base_version: Mapped[str | None] = mapped_column(String(64))
    # the model line it belongs to: NULL for the shared line, else a server's key
    # ("discord:1234", storage.servers.server_key); each line has at most one active version
    line: Mapped[str | None] = mapped_column(String(100), index=True)
    path: Mapped[str] = mapped_column(Text)
    base_model: Mapped[str] = mapped_column(String(200))
    training_run_id: Mapped[int | None] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="candidate")  # candidate|active|retired
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CuratedSample(Base):
    __tablename__ = "curated_samples"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))  # admin|rating
    generation_id: Mapped[int | None] = mapped_column(ForeignKey("generations.id"))
    added_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    removed_by: Mapped[str | None] = mapped_column(String(64))  # an admin's removal sticks
    status: Mapped[str] = mapped_column(String(16), default="approved")  # pending|approved|rejected
    why: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the ratings that brought it in
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the server the text came from ("discord:1234"): a rated output's server, or the line an
    # owner added it to; NULL for texts the owners added to the shared data
    origin: Mapped[str | None] = mapped_column(String(100), index=True)


class TrainingRun(Base):
    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger: Mapped[str] = mapped_column(String(16))  # manual|schedule
    requested_by: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    dataset_size: Mapped[int] = mapped_column(Integer, default=0)
    dataset_snapshot: Mapped[list[Any]] = mapped_column(JSON, default=list)
    loss_log: Mapped[list[Any]] = mapped_column(JSON, default=list)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    eval_before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    eval_after: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    model_version: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    line: Mapped[str | None] = mapped_column(String(100), index=True)  # NULL: the shared line


class AuditEntry(Base):
    __tablename__ = "admin_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    allowed: Mapped[bool] = mapped_column(Boolean)
    scope: Mapped[str | None] = mapped_column(String(16))  # global|server|read (admin.auth)
    server_id: Mapped[str | None] = mapped_column(String(64))  # where it was asked
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ServerSettings(Base):
    """What a server's admins chose for their server; absent columns mean "the default"."""

    __tablename__ = "server_settings"
    __table_args__ = (UniqueConstraint("platform", "server_id", name="uq_server_settings"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    server_id: Mapped[str] = mapped_column(String(64))
    allowed_channels: Mapped[list[Any]] = mapped_column(JSON, default=list)  # empty: all
    admin_role_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cooldown_s: Mapped[float | None] = mapped_column(Float)
    defaults: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # sampling defaults
    max_new_tokens_cap: Mapped[int | None] = mapped_column(Integer)
    samples_cap: Mapped[int | None] = mapped_column(Integer)
    ratings_train: Mapped[bool] = mapped_column(Boolean, default=True)
    own_line: Mapped[bool] = mapped_column(
        Boolean, default=False
    )  # owners: a model line of its own
    line_shares: Mapped[bool] = mapped_column(
        Boolean, default=False
    )  # owners: its data trains shared
    blocklist: Mapped[list[Any] | None] = mapped_column(JSON)  # moderation terms added here
    # prompt templates: "" for the whole server, a channel id for one channel
    templates: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DataDeletion(Base):
    """A member who deleted their data: future training skips them."""

    __tablename__ = "data_deletions"
    __table_args__ = (UniqueConstraint("platform", "user_id", name="uq_data_deletion"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(64))
    deleted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Lease(Base):
    """A named lease: one of several bot processes on this database holds it until it
    expires (the holder renews it well before then)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ServingProcess(Base):
    """A `gpt2bot run` process on this database: what it is and what it serves, renewed on
    every follow round (`last_seen`); a clean stop deletes its row."""

    __tablename__ = "serving_processes"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # host:pid:random
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    platform: Mapped[str] = mapped_column(String(32))
    shards: Mapped[str] = mapped_column(String(64), default="")  # DISCORD_SHARDS, or ""
    served_version: Mapped[str] = mapped_column(String(64))
    candidate_version: Mapped[str | None] = mapped_column(String(64))  # resident A/B arm
    problem: Mapped[str | None] = mapped_column(Text)  # why it cannot serve what it should
    interval_s: Mapped[float] = mapped_column(Float)  # how often it renews this row
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Report(Base):
    """A member's 🚩 on an output; one per member per generation."""

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("generation_id", "reporter_id", name="uq_report_reporter"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    generation_id: Mapped[int] = mapped_column(
        ForeignKey("generations.id", ondelete="CASCADE"), index=True
    )
    reporter_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReviewItem(Base):
    """A blind side-by-side comparison: one prompt, the outputs of two versions shown as "A"
    and "B" without their names, and an owner's verdict (None while it waits)."""

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))  # fixed|recent
    # the member's generation a recent prompt came from (their data: redacted with it)
    generation_id: Mapped[int | None] = mapped_column(
        ForeignKey("generations.id", ondelete="SET NULL"), index=True
    )
    version_a: Mapped[str] = mapped_column(String(64))  # shown as "A"
    version_b: Mapped[str] = mapped_column(String(64))  # shown as "B"
    output_a: Mapped[str] = mapped_column(Text)
    output_b: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)  # the same for both sides
    seed: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    verdict: Mapped[str | None] = mapped_column(String(8))  # a|b|tie
    winner: Mapped[str | None] = mapped_column(String(64))  # the better version; None: a tie
    reviewer: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    redacted: Mapped[bool] = mapped_column(Boolean, default=False)  # its prompt's author deleted it


RUNNING_ONLY = text("status = 'running'")


class Experiment(Base):
    """An A/B experiment: a line's active version (control) against a candidate of the same
    line on live ratings. At most one runs per line (a partial unique index on the running
    row's line)."""

    __tablename__ = "experiments"
    __table_args__ = (
        Index(
            "uq_experiments_one_running_per_line",
            "line",
            unique=True,
            sqlite_where=RUNNING_ONLY,
            postgresql_where=RUNNING_ONLY,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    control_version: Mapped[str] = mapped_column(String(64))
    candidate_version: Mapped[str] = mapped_column(String(64))
    candidate_share: Mapped[float] = mapped_column(Float)  # of members, by a stable hash
    # running|promoted|retired|no_difference|stopped
    status: Mapped[str] = mapped_column(String(16), default="running")
    rule: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # name and thresholds
    started_by: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_by: Mapped[str | None] = mapped_column(String(64))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the decision's numbers
    # the model line it runs in: a server's key ("discord:1234"), or "" for the shared line (not
    # NULL as elsewhere: NULLs never collide in the unique index, and an expression index such
    # as coalesce(line, '') would be lost when SQLite batch migrations copy the table)
    line: Mapped[str] = mapped_column(String(100), default="", server_default="")
