"""Which version serves a request: a server's own line (from the database, within
LINE_FOLLOW_S), else the member's A/B arm, else the shared active version."""

from __future__ import annotations

import pytest

from admin.moderation.fake import FakeModerator
from bot import lines as lines_module
from bot.arms import Arms, NoExperiments
from bot.chat import ChatService, Origin
from bot.lines import LineServing
from model.backends.fake import ScriptedBackend
from model.backends.idle import IdleBackend
from storage import Database, ModelVersionRepository, ServerSettingsRepository

A = Origin("discord", "alice", guild_id="111")
B = Origin("discord", "bea", guild_id="222")


@pytest.fixture
def versions(db: Database) -> ModelVersionRepository:
    repository = ModelVersionRepository(db)
    repository.add("shared-1", "/m/shared-1", "gpt2")
    repository.activate("shared-1")
    for name in ("a-1", "a-2"):
        repository.add(name, f"/m/{name}", "gpt2", base_version="shared-1", line="discord:111")
    repository.activate("a-1")
    return repository


async def test_a_line_serves_its_server_only_once_enabled(
    db: Database, versions: ModelVersionRepository
) -> None:
    backend = ScriptedBackend(model_version="shared-1")
    serving, arms = LineServing(db, backend), Arms(NoExperiments())
    assert await serving.choose(A, arms) == (None, None)  # not enabled: the shared version
    ServerSettingsRepository(db).update("discord", "111", "owner", own_line=True)
    assert await serving.choose(A, arms) == ("a-1", None)
    assert backend.extra == {"a-1": "/m/a-1"}  # attached on the way in
    assert await serving.choose(B, arms) == (None, None)
    cli = Origin("cli", "cli", serves_as="discord:111")  # `generate --server discord:111`
    assert await serving.choose(cli, arms) == ("a-1", None)

    chat = ChatService(db, backend, moderator=FakeModerator())
    finished = await chat.generate(A, "Hello", {"max_new_tokens": 2})
    assert finished.generations[0].model_version == "a-1"
    finished = await chat.generate(B, "Hello", {"max_new_tokens": 2})
    assert finished.generations[0].model_version == "shared-1"


async def test_every_process_follows_a_lines_switch_within_the_bound(
    db: Database, versions: ModelVersionRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    ServerSettingsRepository(db).update("discord", "111", "owner", own_line=True)
    serving, arms = (
        LineServing(db, ScriptedBackend(model_version="shared-1")),
        Arms(NoExperiments()),
    )
    assert (await serving.choose(A, arms))[0] == "a-1"
    versions.activate("a-2")  # e.g. `gpt2bot models use a-2 --server discord:111`
    assert (await serving.choose(A, arms))[0] == "a-1"  # read within LINE_FOLLOW_S
    monkeypatch.setattr(lines_module, "LINE_FOLLOW_S", 0.0)
    assert (await serving.choose(A, arms))[0] == "a-2"


async def test_a_backend_that_serves_one_version_falls_back_to_the_shared_one(
    db: Database, versions: ModelVersionRepository
) -> None:
    ServerSettingsRepository(db).update("discord", "111", "owner", own_line=True)
    serving = LineServing(db, IdleBackend("shared-1"))
    assert await serving.choose(A, Arms(NoExperiments())) == (None, None)
