"""A/B serving through the chat use-case and the composition root: a member's arm picks the
version that serves them, the stored generation records it, a rating lets the rule decide,
and an experiment survives a restart and a `kill -9`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from admin.config import ABConfig
from admin.moderation.fake import FakeModerator
from bot.app import App
from bot.chat import Origin
from bot.export import generation_row
from bot.settings import Settings
from model.backends.fake import ScriptedBackend
from storage import Database, ModelVersionRepository, upgrade

REPO = Path(__file__).resolve().parents[2]
QUICK = ABConfig(promote_probability=0.95, retire_probability=0.95, min_ratings=3)


def install(settings: Settings) -> None:
    """tiny-1 active and a candidate `better` whose held-out loss passes the gate."""
    db = Database(settings.storage.url)
    try:
        upgrade(db.engine)
        versions = ModelVersionRepository(db)
        versions.add("tiny-1", "/models/tiny-1", "bootstrap")
        versions.activate("tiny-1")
        metrics = {"eval_loss": 3.0, "baseline_version": "tiny-1", "baseline_eval_loss": 3.1}
        versions.add("better", "/models/better", "bootstrap", parent="tiny-1", metrics=metrics)
    finally:
        db.dispose()


@pytest.fixture
def ab_settings(settings: Settings) -> Settings:
    install(settings)
    return replace(settings, learning=replace(settings.learning, ab=QUICK))


async def open_app(settings: Settings, backend: ScriptedBackend) -> App:
    return await App.open(settings, backend=backend, moderator=FakeModerator())


async def members_by_arm(app: App, count: int = 2) -> dict[str, list[str]]:
    arms: dict[str, list[str]] = {"control": [], "candidate": []}
    user = 0
    while min(len(ids) for ids in arms.values()) < count:
        assignment = await app.admin.experiments.arm_for("web", f"member-{user}")
        assert assignment is not None
        arms[assignment.arm].append(f"member-{user}")
        user += 1
    return arms


async def test_each_member_is_served_by_their_arm_and_the_generation_records_it(
    ab_settings: Settings,
) -> None:
    backend = ScriptedBackend(model_version="tiny-1")
    app = await open_app(ab_settings, backend)
    try:
        experiment = await app.admin.experiments.start("owner", "better")
        arms = await members_by_arm(app)
        for arm, version in (("candidate", "better"), ("control", "tiny-1")):
            for member in arms[arm]:
                finished = await app.chat.generate(Origin("web", member), "Hello", {"seed": 1})
                stored = finished.generations[0]
                assert backend.requests[-1].version == version
                assert (stored.model_version, stored.arm) == (version, arm)
                assert stored.experiment_id == experiment.id
        # a candidate that is not resident: the active version serves, and says so
        await backend.unload_version("better")
        finished = await app.chat.generate(Origin("web", arms["candidate"][0]), "Hi")
        assert (finished.generations[0].model_version, finished.generations[0].arm) == (
            "tiny-1",
            "control",
        )
        row = generation_row(finished.generations[0])  # `gpt2bot export` says it too
        assert (row["experiment_id"], row["arm"]) == (experiment.id, "control")
        status = await app.admin.experiments.status()
        assert status is not None
        served = (len(arms["candidate"]), len(arms["control"]) + 1)
        assert (status.candidate.generations, status.control.generations) == served
    finally:
        await app.close()


async def test_ratings_let_the_rule_promote_the_winner_in_the_background(
    ab_settings: Settings,
) -> None:
    backend = ScriptedBackend(model_version="tiny-1")
    app = await open_app(ab_settings, backend)
    try:
        await app.admin.experiments.start("owner", "better")
        arms = await members_by_arm(app, count=1)
        liked = {"candidate": "👍", "control": "👎"}
        for arm, member in ((arm, ids[0]) for arm, ids in arms.items()):
            for seed in range(4):
                finished = await app.chat.generate(Origin("web", member), "Hi", {"seed": seed})
                for rater in ("r1", "r2"):
                    await app.chat.rate(finished.generations[0].id, rater, liked[arm])
        await app.chat.arms.wait()
        status = await app.admin.experiments.status()
        assert status is not None and status.status == "promoted"
        assert backend.model_version == "better"  # hot-swapped
        assert ("better", "/models/better") in backend.swaps
        later = await app.chat.generate(Origin("web", arms["control"][0]), "Hi")
        assert later.generations[0].arm is None  # no experiment runs now
    finally:
        await app.close()


async def test_an_experiment_survives_closing_and_reopening_the_app(ab_settings: Settings) -> None:
    app = await open_app(ab_settings, ScriptedBackend(model_version="tiny-1"))
    try:
        await app.admin.experiments.start("owner", "better", 0.25)
        arms = await members_by_arm(app, count=1)
        await app.chat.generate(Origin("web", arms["candidate"][0]), "Hello")
        before = await app.admin.experiments.status()
        assigned = await app.admin.experiments.arm_for("web", arms["candidate"][0])
    finally:
        await app.close()

    backend = ScriptedBackend(model_version="tiny-1")
    reopened = await open_app(ab_settings, backend)
    try:
        assert backend.resident_versions == ("tiny-1", "better")  # loaded again at start-up
        after = await reopened.admin.experiments.status()
        assert before is not None and after is not None
        assert after.to_dict() == before.to_dict()
        assert after.candidate.share == 0.25 and after.candidate.generations == 1
        assert await reopened.admin.experiments.arm_for("web", arms["candidate"][0]) == assigned
    finally:
        await reopened.close()


KILLED_PROCESS = """
import asyncio, os, signal, sys
from bot.app import App
from bot.settings import Settings
from admin.moderation.fake import FakeModerator
from model.backends.fake import ScriptedBackend

async def main():
    settings = Settings.from_env({"DATABASE_URL": sys.argv[1]}, dotenv_path=None)
    app = await App.open(settings, backend=ScriptedBackend(model_version="tiny-1"),
                         moderator=FakeModerator())
    await app.admin.experiments.start("owner", "better")
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no clean-up

asyncio.run(main())
"""


def test_an_experiment_survives_kill_9(ab_settings: Settings) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    url = ab_settings.storage.url
    done = subprocess.run(
        [sys.executable, "-c", KILLED_PROCESS, url], env=env, capture_output=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()

    async def reopen() -> tuple[tuple[str, ...], str | None]:
        backend = ScriptedBackend(model_version="tiny-1")
        app = await open_app(ab_settings, backend)
        try:
            status = await app.admin.experiments.status()
            return backend.resident_versions, None if status is None else status.status
        finally:
            await app.close()

    assert asyncio.run(reopen()) == (("tiny-1", "better"), "running")
