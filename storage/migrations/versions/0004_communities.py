"""Communities: per-server settings, members who deleted their data, redacted generations,
and the scope and server of each audited admin attempt.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_settings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("server_id", sa.String(64), nullable=False),
        sa.Column("allowed_channels", sa.JSON, nullable=False),
        sa.Column("admin_role_ids", sa.JSON, nullable=False),
        sa.Column("cooldown_s", sa.Float, nullable=True),
        sa.Column("defaults", sa.JSON, nullable=False),
        sa.Column("max_new_tokens_cap", sa.Integer, nullable=True),
        sa.Column("samples_cap", sa.Integer, nullable=True),
        sa.Column("ratings_train", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("updated_by", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("platform", "server_id", name="uq_server_settings"),
    )
    op.create_table(
        "data_deletions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("platform", "user_id", name="uq_data_deletion"),
    )
    with op.batch_alter_table("generations") as batch:
        batch.add_column(
            sa.Column("redacted", sa.Boolean, nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("admin_audit") as batch:
        batch.add_column(sa.Column("scope", sa.String(16), nullable=True))
        batch.add_column(sa.Column("server_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("admin_audit") as batch:
        batch.drop_column("server_id")
        batch.drop_column("scope")
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("redacted")
    op.drop_table("data_deletions")
    op.drop_table("server_settings")
