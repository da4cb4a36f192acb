"""Alembic migrations, applied programmatically at start-up (`gpt2bot run` and friends)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database at `engine` up to `revision` (an empty database included)."""
    _migrate(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database at `engine` back to `revision` (for operators and tests)."""
    _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step: Callable[[Config, str], None], revision: str) -> None:
    """Run `step` on one connection, in one transaction.

    SQLite alters a table by copying it to a new one and dropping the old; with foreign keys
    on, that drop cascades (`ON DELETE CASCADE`) and would delete every rating of a rebuilt
    `generations`. So on SQLite the keys are off while migrations run (the pragma has no effect
    inside a transaction, hence before it), checked afterwards, and on again. Migrations can
    therefore use alembic's batch operations on any table.
    """
    config = _config()
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                before = _broken_references(connection) if sqlite else 0
                config.attributes["connection"] = connection
                step(config, revision)
                if sqlite and _broken_references(connection) > before:  # rolls back
                    raise RuntimeError("a migration left rows pointing at missing rows")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def _broken_references(connection: Connection) -> int:
    return len(connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall())


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()
