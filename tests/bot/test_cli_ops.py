"""`gpt2bot backup` and `gpt2bot restore` as an operator runs them, while the bot writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from storage import Database, GenerationRepository, upgrade
from tests.storage.test_backup import Writer, rows

GPT2BOT = Path(sys.executable).with_name("gpt2bot")


def gpt2bot(cwd: Path, database: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SLACK_"))},
        "DATABASE_URL": f"sqlite:///{database}",
        "MODEL_DIR": str(cwd / "models"),
    }
    return subprocess.run(
        [str(GPT2BOT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_backup_while_writing_then_restore_into_a_new_install(tmp_path):
    live = tmp_path / "data" / "gpt2bot.db"
    db = Database(f"sqlite:///{live}")
    upgrade(db.engine)
    writer = Writer(db)
    writer.start()
    try:
        assert writer.reached.wait(timeout=120)
        before = list(writer.ratings)
        done = gpt2bot(tmp_path, live, "backup", "--out", "backups/today.db", "--json")
    finally:
        writer.stop.set()
        writer.join(timeout=60)
    db.dispose()
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rows"]["generations"] >= len(before)
    backup = tmp_path / "backups" / "today.db"

    fresh = tmp_path / "elsewhere" / "gpt2bot.db"
    done = gpt2bot(tmp_path, fresh, "restore", str(backup))
    assert done.returncode == 0, done.stderr
    assert f"restored {report['rows']['generations']:,} generations" in done.stderr
    restored = rows(fresh)
    assert all(restored[i][2] == 1 for i in before)  # each with its rating

    again = gpt2bot(tmp_path, fresh, "restore", str(backup))
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "--force" in again.stderr
    forced = gpt2bot(tmp_path, fresh, "restore", str(backup), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "kept at" in forced.stderr
    check = Database(f"sqlite:///{fresh}")
    assert GenerationRepository(check).count() == report["rows"]["generations"]
    check.dispose()


def test_backup_of_postgresql_explains_pg_dump_in_one_line(tmp_path):
    env = {**os.environ, "DATABASE_URL": "postgresql+psycopg://bot:pw@localhost/gpt2bot"}
    done = subprocess.run(
        [str(GPT2BOT), "backup", "--out", "x.db"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("gpt2bot: gpt2bot backup copies SQLite databases")
    assert "pg_dump" in done.stderr and done.stderr.count("\n") == 1
