"""Learning loop: remember who removed a curated sample, so a rating-derived sample an admin
removed does not come back when ratings are re-read.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("curated_samples") as batch:
        batch.add_column(sa.Column("removed_by", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("curated_samples") as batch:
        batch.drop_column("removed_by")
