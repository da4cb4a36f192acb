"""A/B experiments: the experiments table (at most one running) and, on every generation, the
experiment it was served in and its arm. (On SQLite the batch operations copy `generations`;
`storage.migrate` runs migrations with foreign keys off, so its ratings stay.)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

RUNNING_ONLY = sa.text("status = 'running'")
FOREIGN_KEY = "fk_generations_experiment_id"


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("control_version", sa.String(64), nullable=False),
        sa.Column("candidate_version", sa.String(64), nullable=False),
        sa.Column("candidate_share", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rule", sa.JSON, nullable=False),
        sa.Column("started_by", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_by", sa.String(64), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.JSON, nullable=True),
    )
    # at most one running experiment, whoever writes the table
    op.create_index(
        "uq_experiments_one_running",
        "experiments",
        ["status"],
        unique=True,
        sqlite_where=RUNNING_ONLY,
        postgresql_where=RUNNING_ONLY,
    )
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("experiment_id", sa.Integer, nullable=True))
        batch.add_column(sa.Column("arm", sa.String(16), nullable=True))
        batch.create_foreign_key(FOREIGN_KEY, "experiments", ["experiment_id"], ["id"])
        batch.create_index("ix_generations_experiment_id", ["experiment_id"])


def downgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.drop_index("ix_generations_experiment_id")
        batch.drop_constraint(FOREIGN_KEY, type_="foreignkey")
        batch.drop_column("arm")
        batch.drop_column("experiment_id")
    op.drop_index("uq_experiments_one_running", table_name="experiments")
    op.drop_table("experiments")
