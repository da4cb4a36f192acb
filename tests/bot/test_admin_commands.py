"""The `/admin` command set described once (`bot/admin_commands.py`), as a platform that takes
typed commands runs it: who may do what, what each command answers, and what it changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from admin.auth import OWNERS_ONLY
from bot.admin_commands import COMMANDS, AdminCommands, Renderer, Surface
from bot.plugin_api import Actor, InvalidRequest, Origin, app_for_tests
from storage import (
    AuditRepository,
    GenerationRepository,
    ModelVersionRecord,
    ModelVersionRepository,
    NewGeneration,
)

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


class Terse(Renderer):
    """A platform that words one answer its own way and keeps the rest."""

    def versions(self, rows: list[ModelVersionRecord]) -> str:
        return "versions: " + ", ".join(sorted(r.name for r in rows))


async def test_a_platform_with_typed_options_words_answers_its_own_way(app) -> None:
    commands = AdminCommands(app, renderer=Terse())
    assert (await commands.call(OWNER, "model list")).text == "versions: v1, v2"
    used = await commands.call(OWNER, "model use", {"version": "v2", "force": True})
    assert used.text.startswith("Now serving v2 here")  # the default wording
    refused = await commands.call(MEMBER, "model use", {"version": "v1"})
    assert refused.text == OWNERS_ONLY and app.backend.model_version == "v2"
    unknown = await commands.call(OWNER, "model use", {"version": "v9"})
    assert unknown.text == "There is no model version named 'v9'; the model list shows them."
    audit = AuditRepository(app.db).recent()
    assert [(a["actor"], a["action"], a["allowed"], a["detail"]) for a in audit][1:] == [
        ("mia", "model use", False, {"version": "v1"}),
        ("olga", "model use", True, {"version": "v2", "force": True}),
        ("olga", "model list", True, {}),
    ]


async def test_owners_review_the_rating_queue_by_typing(app) -> None:
    generations = GenerationRepository(app.db)
    new = NewGeneration("chat", "mia", "A rated", " output", {}, 1, "v1", 1, 1, 0.1)
    generation = generations.add(new)
    for rater in ("mia", "bob", "carol", "dave"):  # mia's own 👍 does not count
        generations.rate(generation.id, rater, 1, "👍")
    commands = AdminCommands(app)

    queue = (await commands.run(OWNER, "curate queue")).text
    assert "`#1` (👍 3 / 👎 0, bound 0.438) A rated output" in queue
    assert "`/admin curate queue approve ID`" in queue
    assert (await commands.run(SERVER_ADMIN, "curate queue approve 1")).text == OWNERS_ONLY
    assert (
        "Say `/admin curate queue approve ID`"
        in (await commands.run(OWNER, "curate queue keep 1")).text
    )
    approved = await commands.run(OWNER, "curate queue approve #1")
    assert approved.text == "Sample #1 approved: it joins the next training run."
    again = await commands.run(OWNER, "curate queue reject 1")
    assert "No curated sample 1 is waiting" in again.text
    assert "A rated output" in (await commands.run(OWNER, "curate list")).text


async def test_server_admins_delete_an_output_and_set_defaults_by_typing(app) -> None:
    finished = await app.chat.generate(Origin("chat", "mia", "S1", "C1"), "Something rude")
    (generation,) = finished.generations
    await app.chat.attach_message(generation.id, "M1")
    commands = AdminCommands(app)

    deleted = (await commands.run(SERVER_ADMIN, f"server delete {generation.id}")).text
    assert deleted == (
        f"Generation #{generation.id} is deleted (text, ratings, training use). "
        "Its message stays in the channel: delete it there."
    )
    assert GenerationRepository(app.db).get(generation.id).redacted
    other = Actor("chat", "sam", server_id="S2", server_admin=True)
    assert "no generation" in (await commands.run(other, "server delete 1")).text

    defaults = (await commands.run(SERVER_ADMIN, "server defaults temperature=0.5")).text
    assert defaults.startswith("Saved.") and "defaults: temperature 0.5" in defaults
    blocked = await commands.run(SERVER_ADMIN, "server blocklist spoiler, plot twist")
    assert blocked.text.startswith("Saved.")
    with pytest.raises(InvalidRequest):
        await app.chat.generate(Origin("chat", "mia", "S1"), "Here comes a plot twist")


async def test_a_platform_deletes_the_message_of_an_output_it_posted(app) -> None:
    finished = await app.chat.generate(Origin("chat", "mia", "S1", "C1"), "Something rude")
    (generation,) = finished.generations
    await app.chat.attach_message(generation.id, "M1")
    removed: list[tuple[str, str]] = []

    async def unpublish(channel_id: str, message_id: str) -> None:
        removed.append((channel_id, message_id))

    options = {"generation": generation.id}
    reply = await AdminCommands(app).call(
        SERVER_ADMIN, "server delete", options, unpublish=unpublish
    )
    assert reply.text == f"Generation #{generation.id} is deleted (text, ratings, training use)."
    assert removed == [("C1", "M1")]
