"""Safe learning: moderation flags on generations, reports, a per-server blocklist, and curated
samples that wait for review and record why they are there.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("flagged", sa.Text, nullable=True))
        batch.add_column(sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("curated_samples") as batch:
        batch.add_column(
            sa.Column("status", sa.String(16), nullable=False, server_default="approved")
        )
        batch.add_column(sa.Column("why", sa.JSON, nullable=True))
        batch.add_column(sa.Column("reviewed_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("server_settings") as batch:
        batch.add_column(sa.Column("blocklist", sa.JSON, nullable=True))
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "generation_id",
            sa.Integer,
            sa.ForeignKey("generations.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("reporter_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("generation_id", "reporter_id", name="uq_report_reporter"),
    )


def downgrade() -> None:
    op.drop_table("reports")
    with op.batch_alter_table("server_settings") as batch:
        batch.drop_column("blocklist")
    with op.batch_alter_table("curated_samples") as batch:
        batch.drop_column("reviewed_at")
        batch.drop_column("reviewed_by")
        batch.drop_column("why")
        batch.drop_column("status")
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("hidden")
        batch.drop_column("flagged")
