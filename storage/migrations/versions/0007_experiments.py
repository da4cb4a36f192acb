"""A/B experiments: the experiments table (at most one running) and, on every generation, the
experiment it was served in and its arm.

SQLite cannot add a foreign key to a table except with the column itself: alembic's batch mode
would copy `generations` and drop the original, and that DROP deletes every rating through
`ON DELETE CASCADE` (foreign keys are on). So SQLite gets `ADD COLUMN ... REFERENCES`, in place.

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
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE generations ADD COLUMN experiment_id INTEGER "
            f"CONSTRAINT {FOREIGN_KEY} REFERENCES experiments (id)"
        )
    else:
        op.add_column("generations", sa.Column("experiment_id", sa.Integer, nullable=True))
        op.create_foreign_key(FOREIGN_KEY, "generations", "experiments", ["experiment_id"], ["id"])
    op.add_column("generations", sa.Column("arm", sa.String(16), nullable=True))
    op.create_index("ix_generations_experiment_id", "generations", ["experiment_id"])


def downgrade() -> None:
    op.drop_index("ix_generations_experiment_id", table_name="generations")
    if op.get_bind().dialect.name == "sqlite":
        # dropping the columns would copy the table (and cascade to the ratings, see above):
        # they stay, empty, and nothing at 0006 reads them
        op.execute("UPDATE generations SET experiment_id = NULL, arm = NULL")
    else:
        op.drop_constraint(FOREIGN_KEY, "generations", type_="foreignkey")
        op.drop_column("generations", "arm")
        op.drop_column("generations", "experiment_id")
    op.drop_index("uq_experiments_one_running", table_name="experiments")
    op.drop_table("experiments")
