"""Serving processes: each `gpt2bot run` records what it is and what it serves (the fleet).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "serving_processes",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("shards", sa.String(64), nullable=False),
        sa.Column("served_version", sa.String(64), nullable=False),
        sa.Column("candidate_version", sa.String(64)),
        sa.Column("problem", sa.Text),
        sa.Column("interval_s", sa.Float, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("serving_processes")
