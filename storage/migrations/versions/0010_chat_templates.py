"""Talking in chat: a server's prompt templates (server-wide and per channel) and, on each
generation, the template it was made with.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("server_settings") as batch:
        batch.add_column(sa.Column("templates", sa.JSON, nullable=True))
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("template", sa.Text, nullable=True))
    # story threads are found by channel: the thread's generations, newest first
    op.create_index("ix_generations_platform_channel", "generations", ["platform", "channel_id"])


def downgrade() -> None:
    op.drop_index("ix_generations_platform_channel", table_name="generations")
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("template")
    with op.batch_alter_table("server_settings") as batch:
        batch.drop_column("templates")
