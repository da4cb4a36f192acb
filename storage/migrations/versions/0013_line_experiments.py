"""Model lines run their own A/B experiments and schedules: an experiment belongs to the shared
line ("") or to one server's line (`line`, its key), and at most one runs *per line* (the
partial unique index on the running row's status becomes one on its line; the shared line is
"" rather than NULL because NULLs never collide in a unique index); a training run records the
line it trained (`line`, NULL for the shared line), so a line's scheduled retrain compares
with its own last run.

Downgrading stops the running experiments of servers' lines first: the old index allows one
running experiment in all.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

RUNNING_ONLY = sa.text("status = 'running'")
ONE_RUNNING = "uq_experiments_one_running"
ONE_RUNNING_PER_LINE = "uq_experiments_one_running_per_line"


def upgrade() -> None:
    op.drop_index(ONE_RUNNING, table_name="experiments")
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("line", sa.String(100), nullable=False, server_default=""))
    op.create_index(
        ONE_RUNNING_PER_LINE,
        "experiments",
        ["line"],
        unique=True,
        sqlite_where=RUNNING_ONLY,
        postgresql_where=RUNNING_ONLY,
    )
    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(sa.Column("line", sa.String(100), nullable=True))
        batch.create_index("ix_training_runs_line", ["line"])


def downgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_index("ix_training_runs_line")
        batch.drop_column("line")
    op.execute("UPDATE experiments SET status = 'stopped' WHERE line != '' AND status = 'running'")
    op.drop_index(ONE_RUNNING_PER_LINE, table_name="experiments")
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("line")
    op.create_index(
        ONE_RUNNING,
        "experiments",
        ["status"],
        unique=True,
        sqlite_where=RUNNING_ONLY,
        postgresql_where=RUNNING_ONLY,
    )
