"""Backups taken while the bot writes, and restores from them (real SQLite files)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from storage import Database, GenerationRepository, NewGeneration, upgrade
from storage.backup import BackupUnsupported, backup_sqlite, check_backup_file, restore_sqlite

LOAD_ROWS_BEFORE_BACKUP = 150  # generations committed before the backup starts


def new_generation(index: int) -> NewGeneration:
    return NewGeneration(
        platform="discord",
        user_id=f"user-{index % 7}",
        prompt=f"prompt {index}",
        output=f" output {index} " * 5,
        params={"temperature": 0.8},
        seed=index,
        model_version="v1",
        prompt_tokens=2,
        completion_tokens=10,
        latency_s=0.1,
    )


class Writer(threading.Thread):
    """The bot's write pattern: a generation, then a rating of it, each its own transaction."""

    def __init__(self, db: Database) -> None:
        super().__init__(daemon=True)
        self.repository = GenerationRepository(db)
        self.generations: list[int] = []  # committed, in order
        self.ratings: list[int] = []  # generation ids whose rating is committed
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.reached = threading.Event()

    def run(self) -> None:
        index = 0
        try:
            while not self.stop.is_set():
                record = self.repository.add(new_generation(index))
                self.generations.append(record.id)
                self.repository.rate(record.id, f"rater-{index % 5}", 1, "👍")
                self.ratings.append(record.id)
                index += 1
                if index >= LOAD_ROWS_BEFORE_BACKUP:
                    self.reached.set()
        except BaseException as error:  # reported by the test
            self.errors.append(error)
            self.reached.set()


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def rows(path: Path) -> dict[int, tuple[str, str, int]]:
    """generation id -> (prompt, output, number of ratings), read straight from the file."""
    with sqlite3.connect(path) as connection:
        query = (
            "SELECT g.id, g.prompt, g.output, count(r.id) FROM generations g "
            "LEFT JOIN ratings r ON r.generation_id = g.id GROUP BY g.id"
        )
        return {row[0]: (row[1], row[2], row[3]) for row in connection.execute(query)}


def test_a_backup_under_write_load_restores_every_committed_row(tmp_path):
    live = tmp_path / "live.db"
    db = Database(url_of(live))
    upgrade(db.engine)
    writer = Writer(db)
    writer.start()
    try:
        assert writer.reached.wait(timeout=120)
        generations_before = list(writer.generations)
        ratings_before = list(writer.ratings)
        report = backup_sqlite(url_of(live), tmp_path / "backups" / "b.db")
        generations_during = len(writer.generations)
    finally:
        writer.stop.set()
        writer.join(timeout=60)
    assert writer.errors == []  # the writer never waited out a lock
    assert generations_during >= len(generations_before)

    restored = tmp_path / "restored.db"
    counts, kept = restore_sqlite(url_of(restored), report.path)
    assert kept is None
    source, copy = rows(live), rows(restored)
    # every generation committed before the backup began is there, identical, with its rating
    assert set(generations_before) <= set(copy)
    for generation_id in ratings_before:
        assert copy[generation_id] == (*source[generation_id][:2], 1)
    # and what the copy has is a consistent snapshot: an unbroken prefix, no half rows
    assert sorted(copy) == list(range(1, len(copy) + 1))
    assert all(copy[i][:2] == source[i][:2] for i in copy)
    assert counts["generations"] == report.rows["generations"] == len(copy)
    assert counts["conversations"] == len(copy)
    restored_db = Database(url_of(restored))
    upgrade(restored_db.engine)  # the restored file opens and migrates like any database
    assert GenerationRepository(restored_db).count() == len(copy)
    restored_db.dispose()
    db.dispose()


def test_the_backup_is_one_file_and_never_left_half_written(tmp_path):
    live = tmp_path / "live.db"
    db = Database(url_of(live))
    upgrade(db.engine)
    GenerationRepository(db).add(new_generation(1))
    out = tmp_path / "b.db"
    report = backup_sqlite(url_of(live), out)
    assert report.rows["generations"] == 1
    assert not out.with_name("b.db-wal").exists()
    assert not out.with_name("b.db.partial").exists()
    with sqlite3.connect(out) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    with pytest.raises(ValueError, match="the live database itself"):
        backup_sqlite(url_of(live), live)
    db.dispose()


def test_restore_keeps_the_replaced_database_and_asks_for_force(tmp_path):
    first = tmp_path / "first.db"
    db = Database(url_of(first))
    upgrade(db.engine)
    repository = GenerationRepository(db)
    repository.add(new_generation(1))
    backup = backup_sqlite(url_of(first), tmp_path / "one.db").path
    repository.add(new_generation(2))  # written after the backup
    with pytest.raises(ValueError, match="--force"):
        restore_sqlite(url_of(first), backup)
    db.dispose()

    counts, kept = restore_sqlite(url_of(first), backup, force=True)
    assert counts["generations"] == 1
    assert kept is not None and len(rows(kept)) == 2  # nothing thrown away
    assert list(rows(first)) == [1]


def test_only_a_gpt2bot_database_is_restored(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ValueError, match="not a SQLite database"):
        check_backup_file(junk)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE t (x)")
    with pytest.raises(ValueError, match="not a gpt2bot one"):
        restore_sqlite(url_of(tmp_path / "target.db"), other)
    with pytest.raises(ValueError, match="does not exist"):
        restore_sqlite(url_of(tmp_path / "target.db"), tmp_path / "missing.db")


def test_postgresql_gets_pg_dump_commands_without_the_password():
    url = "postgresql+psycopg://bot:s3cret@db.example:5432/gpt2bot"
    with pytest.raises(BackupUnsupported) as caught:
        backup_sqlite(url, Path("x.db"))
    message = str(caught.value)
    assert "pg_dump --format=custom --file FILE 'postgresql://bot:***@db.example:5432/gpt2bot'" in (
        message
    )
    assert "pg_restore" in message and "s3cret" not in message


def test_nothing_to_back_up_is_said_plainly(tmp_path):
    with pytest.raises(ValueError, match=r"no database at .* yet"):
        backup_sqlite(url_of(tmp_path / "none.db"), tmp_path / "b.db")


def test_a_restored_backup_keeps_which_version_is_an_adapter_of_which(tmp_path):
    """Adapter versions name their base in the database; a backup and restore keep it, so
    `models list` and the guard against removing a base work on the restored database."""
    from storage import ModelVersionRepository

    live = tmp_path / "live.db"
    db = Database(url_of(live))
    upgrade(db.engine)
    versions = ModelVersionRepository(db)
    versions.add("full-1", "/models/full-1", "gpt2")
    versions.add("lora-2", "/models/lora-2", "gpt2", "full-1", base_version="full-1")
    backup = backup_sqlite(url_of(live), tmp_path / "backup.db").path
    db.dispose()

    restore_sqlite(url_of(tmp_path / "restored.db"), backup)
    restored = Database(url_of(tmp_path / "restored.db"))
    again = ModelVersionRepository(restored)
    assert [(v.name, v.base_version) for v in again.list()] == [
        ("full-1", None),
        ("lora-2", "full-1"),
    ]
    assert [v.name for v in again.adapters_of("full-1")] == ["lora-2"]
    restored.dispose()
