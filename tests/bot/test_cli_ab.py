"""`gpt2bot ab start|status|stop` on a real SQLite file, and a running bot that picks up an
experiment the command started."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from admin.moderation.fake import FakeModerator
from bot.app import App
from bot.chat import Origin
from bot.cli import main
from bot.settings import Settings
from model.backends.fake import ScriptedBackend
from storage import (
    AuditRepository,
    Database,
    ModelVersionRepository,
    NewReviewItem,
    ReviewRepository,
    ServerSettingsRepository,
)
from tests.bot.test_ab import install


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    env = tmp_path / ".env"
    env.write_text(
        f"DATABASE_URL=sqlite:///{tmp_path / 'bot.db'}\nMODEL_DIR={tmp_path / 'models'}\n"
        "LOG_LEVEL=WARNING\nAB_REFRESH_SECONDS=0\n"
    )
    install(Settings.from_env({}, dotenv_path=env))
    return env


def ab(env_file: Path, *words: str) -> list[str]:
    return ["--env-file", str(env_file), "ab", *words]


def test_start_status_and_stop(env_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(ab(env_file, "status")) == 0
    assert "No experiment has run yet" in capsys.readouterr().out

    assert main(ab(env_file, "start", "better", "--share", "0.3")) == 0
    out, err = capsys.readouterr()
    assert "experiment #1: running" in out and "better" in out and "30% of members" in out
    assert "In the database, experiment #1 now runs. No `gpt2bot run` process is live" in err

    assert main(ab(env_file, "status", "--json")) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["id"], status["status"], status["decision"]) == (1, "running", "continue")
    control, candidate = status["arms"]["control"], status["arms"]["candidate"]
    assert (control["version"], candidate["version"]) == ("tiny-1", "better")
    for arm in (control, candidate):
        assert (arm["generations"], arm["ratings"], arm["up_share"]) == (0, 0, None)
    assert candidate["share"] == 0.3 and status["probability"] == pytest.approx(0.5)
    assert status["rule"]["rule"] == "beta-binomial" and status["started_by"] == "cli"

    assert main(ab(env_file, "start", "better")) == 1
    assert capsys.readouterr().err == (
        "gpt2bot: Experiment #1 (tiny-1 against better) is still running: only one runs at a "
        "time. Stop it first (`ab stop`).\n"
    )
    assert main(ab(env_file, "stop")) == 0
    assert "experiment #1: stopped" in capsys.readouterr().out
    assert main(ab(env_file, "status", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["ended_by"] == "cli"
    assert main(ab(env_file, "stop")) == 1
    assert "No experiment is running" in capsys.readouterr().err


def judge(env_file: Path, winners: list[str]) -> None:
    """Owners' blind-review verdicts on tiny-1 (shown as A) against better (B)."""
    db = Database(Settings.from_env({}, dotenv_path=env_file).storage.url)
    try:
        reviews = ReviewRepository(db)
        for verdict in winners:
            item = reviews.add(
                NewReviewItem("Hi", "fixed", "tiny-1", "better", "a", "b", {}, 1, "owner")
            )
            reviews.decide(item.id, verdict, "owner")
    finally:
        db.dispose()


def test_status_puts_the_blind_review_of_the_pair_next_to_the_result(
    env_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(ab(env_file, "start", "better")) == 0
    assert "Blind review of this pair: no verdicts yet" in capsys.readouterr().out
    assert main(ab(env_file, "status", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["review"] is None

    judge(env_file, ["b", "b", "a", "tie"])  # better won 2, tiny-1 1, one tie
    assert main(ab(env_file, "status")) == 0
    assert (
        "Blind review of this pair: 4 judged · better won 2, tiny-1 won 1, 1 tied (better 62%"
        in capsys.readouterr().out
    )
    assert main(ab(env_file, "status", "--json")) == 0
    review = json.loads(capsys.readouterr().out)["review"]
    assert (review["candidate"], review["candidate_wins"], review["control_wins"]) == (
        "better",
        2,
        1,
    )
    assert (review["ties"], review["candidate_rate"]) == (1, 0.625)


def test_bad_starts_are_one_line_each(env_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(ab(env_file, "start")) == 1
    assert capsys.readouterr().err == (
        "gpt2bot: name the candidate: gpt2bot ab start VERSION [--share S]\n"
    )
    assert main(ab(env_file, "start", "nope")) == 1
    assert "no model version named 'nope'" in capsys.readouterr().err
    assert main(ab(env_file, "start", "tiny-1")) == 1
    assert "tiny-1 is the active version already" in capsys.readouterr().err
    assert main(ab(env_file, "status", "--json")) == 0
    assert json.loads(capsys.readouterr().out) is None


async def test_a_running_bot_serves_an_experiment_the_command_started(env_file: Path) -> None:
    settings = Settings.from_env({}, dotenv_path=env_file)
    backend = ScriptedBackend(model_version="tiny-1")
    app = await App.open(settings, backend=backend, moderator=FakeModerator())
    try:
        code = await asyncio.to_thread(main, ab(env_file, "start", "better", "--share", "0.99"))
        assert code == 0
        member = "m0"
        assignment = await app.admin.experiments.arm_for("web", member)  # noticed here
        assert assignment is not None and assignment.arm == "candidate"
        await app.admin.experiments.settled()  # the bot loads the candidate in the background
        finished = await app.chat.generate(Origin("web", member), "Hello")
        assert finished.generations[0].model_version == "better"
        assert finished.generations[0].arm == "candidate"
    finally:
        await app.close()


def test_an_experiment_inside_a_servers_line(
    env_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--server`: the line's active version against another of its versions, refused until
    the owners enabled the line; the shared line keeps its own experiment (or none)."""
    key = "discord:1234"
    db = Database(env_file.read_text().split("DATABASE_URL=")[1].split()[0])
    versions = ModelVersionRepository(db)
    for name in ("a-1", "a-2"):
        versions.add(name, f"/models/{name}", "bootstrap", base_version="tiny-1", line=key)
    versions.activate("a-1")

    assert main(ab(env_file, "start", "a-2", "--server", key)) == 1
    assert "has no model line of its own" in capsys.readouterr().err
    ServerSettingsRepository(db).update("discord", "1234", "owner", own_line=True)
    assert main(ab(env_file, "start", "better", "--server", key)) == 1
    assert f"better is not a version of {key}'s line" in capsys.readouterr().err

    assert main(ab(env_file, "start", "a-2", "--share", "0.4", "--server", key)) == 0
    out, err = capsys.readouterr()
    assert f"experiment #1 in {key}'s line: running" in out and "40% of members" in out
    assert "Serving processes follow it within AB_REFRESH_SECONDS" in err
    assert main(ab(env_file, "start", "better")) == 0  # the shared line's, beside it
    capsys.readouterr()
    assert main(ab(env_file, "status", "--json", "--server", key)) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["id"], status["line"]) == (1, key)
    assert (status["arms"]["control"]["version"], status["arms"]["candidate"]["version"]) == (
        "a-1",
        "a-2",
    )
    assert main(ab(env_file, "stop", "--server", key)) == 0
    assert "experiment #1 in discord:1234's line: stopped" in capsys.readouterr().out
    assert main(ab(env_file, "status", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "running"  # the shared one runs on
    entries = [e for e in AuditRepository(db).recent() if e["platform"] == "ab"]
    db.dispose()
    assert {(e["action"], e["scope"], e["server_id"]) for e in entries} == {
        ("ab start", "line", key),
        ("ab stop", "line", key),
        ("ab start", "global", None),
    }
