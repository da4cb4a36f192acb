"""Model lines: a model version belongs to the shared line (NULL) or to one server's line; a
server may have a line of its own (`own_line`, owners only) and may let its data train the
shared model too (`line_shares`); a curated text records the server it came from (`origin`,
filled in for the rated outputs already curated).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

ORIGIN_OF_RATED = """
UPDATE curated_samples SET origin = (
    SELECT generations.platform || ':' || generations.guild_id FROM generations
    WHERE generations.id = curated_samples.generation_id AND generations.guild_id IS NOT NULL
) WHERE generation_id IS NOT NULL
"""


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("line", sa.String(100), nullable=True))
        batch.create_index("ix_model_versions_line", ["line"])
    with op.batch_alter_table("server_settings") as batch:
        batch.add_column(
            sa.Column("own_line", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("line_shares", sa.Boolean, nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("curated_samples") as batch:
        batch.add_column(sa.Column("origin", sa.String(100), nullable=True))
        batch.create_index("ix_curated_samples_origin", ["origin"])
    op.execute(ORIGIN_OF_RATED)


def downgrade() -> None:
    with op.batch_alter_table("curated_samples") as batch:
        batch.drop_index("ix_curated_samples_origin")
        batch.drop_column("origin")
    with op.batch_alter_table("server_settings") as batch:
        batch.drop_column("line_shares")
        batch.drop_column("own_line")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_index("ix_model_versions_line")
        batch.drop_column("line")
