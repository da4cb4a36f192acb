"""The `/admin` command set described once (`bot/admin_commands.py`), as a platform that takes
typed commands runs it: who may do what, what each command answers, and what it changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from admin.auth import OWNERS_ONLY
from bot.admin_commands import COMMANDS, AdminCommands, Surface
from bot.plugin_api import Actor, Origin, app_for_tests
from storage import AuditRepository, ModelVersionRepository

OWNER = Actor("chat", "olga", server_id="S1")
SERVER_ADMIN = Actor("chat", "sam", server_id="S1", server_admin=True)
MEMBER = Actor("chat", "mia", server_id="S1")


@pytest.fixture
async def app(tmp_path: Path):
    async with app_for_tests(tmp_path, env={"ADMIN_USER_IDS": "olga"}) as application:
        versions = ModelVersionRepository(application.db)
        versions.add(name="v1", path=str(tmp_path), base_model="gpt2", metrics={"eval_loss": 3.5})
        versions.activate("v1")
        versions.add(name="v2", path=str(tmp_path), base_model="gpt2", parent="v1")
        yield application


async def test_members_are_refused_politely_and_every_attempt_is_audited(app) -> None:
    commands = AdminCommands(app)
    reply = await commands.run(MEMBER, "model use v2")
    assert reply.text == OWNERS_ONLY
    assert "only this server's admins" in (await commands.run(MEMBER, "model list")).text
    audit = AuditRepository(app.db).recent()
    assert [(a["actor"], a["action"], a["allowed"]) for a in audit] == [
        ("mia", "model list", False),
        ("mia", "model use", False),
    ]


async def test_model_list_and_use_as_the_owner(app) -> None:
    commands = AdminCommands(app)
    listed = (await commands.run(OWNER, "model list")).text.splitlines()
    assert sorted(listed) == [
        "· `v2` candidate · full model · parent v1",
        "▶ `v1` active · full model · parent - · eval_loss 3.500",
    ]
    refused = (await commands.run(OWNER, "model use nothing")).text
    assert "nothing" in refused and "Traceback" not in refused
    used = (await commands.run(OWNER, "model use v2 force")).text
    assert used.startswith("Now serving v2 here")
    assert (await commands.run(OWNER, "model list")).text.count("▶ `v2` active") == 1
    assert app.backend.model_version == "v2"  # swapped in, as Discord's and Slack's do


async def test_curation_round_trip_in_the_platforms_markup(app) -> None:
    commands = AdminCommands(app, Surface(command="!admin", code=lambda t: f"[{t}]"))
    assert (await commands.run(OWNER, "curate add")).text == (
        "Give the text to add: [!admin curate add Some good example text]."
    )
    added = await commands.run(OWNER, "curate add A line\nworth keeping.")
    assert added.text == "Curated data: added 1."
    listed = (await commands.run(OWNER, "curate list")).text
    assert listed == "[#1] [admin] by olga: A line worth keeping."
    assert (await commands.run(OWNER, "curate remove x")).text == "ID must be a number, e.g. [12]."
    assert (await commands.run(OWNER, "curate remove #1")).text == "Removed curated sample #1."


async def test_help_lists_every_command_and_an_unknown_one_gets_it_too(app) -> None:
    commands = AdminCommands(app)
    usage = (await commands.run(OWNER, "help")).text
    assert all(f"{command.usage}`" in usage for command in COMMANDS)
    unknown = (await commands.run(OWNER, "model dance")).text
    assert unknown.startswith("I don't know `model dance`.") and usage in unknown


async def test_server_admins_set_their_own_server(app) -> None:
    commands = AdminCommands(app, Surface(server_noun="workspace"))
    saved = (await commands.run(SERVER_ADMIN, "server cooldown 30")).text
    assert saved.startswith("Saved.\nThis workspace:") and "cooldown per member: 30 s" in saved
    assert (await app.chat.rules_for(Origin("chat", "mia", "S1"))).cooldown_s == 30
    assert (
        (await commands.run(Actor("chat", "olga"), "server show")).text
    ) == "Use this in a workspace channel."


async def test_stats_answers_with_a_table_and_a_chart(app) -> None:
    commands = AdminCommands(app)
    assert (await commands.run(OWNER, "stats")).text == (
        "No generations yet, so no ratings to compare."
    )
    finished = await app.chat.generate(Origin("chat", "mia", "S1"), "Once upon a time")
    await app.chat.rate(finished.generations[0].id, "sam", "👍")
    reply = await commands.run(OWNER, "stats")
    assert "`fake-1` · 1 · 1 · +1.00 · 100% · 1" in reply.text
    assert reply.charts[0].png.startswith(b"\x89PNG")
    assert (await commands.run(OWNER, "retrain status")).text.startswith("No training run yet")
