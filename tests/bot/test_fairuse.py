"""Fair use in the platform-neutral use-cases: a server's rules, the cooldown, stopping."""

from __future__ import annotations

import asyncio

import pytest

from admin.moderation.fake import FakeModerator
from bot.app import App
from bot.chat import ChatConfig, ChatService, Origin
from bot.fairuse import CoolingDown, NotAllowedHere
from bot.params import InvalidRequest, validate_prompt
from model.backends.base import Cancelled
from model.backends.fake import ScriptedBackend
from storage import ServerSettingsRepository

IN_GUILD = Origin("discord", "alice", guild_id="g1", channel_id="c1")


@pytest.fixture
def chat(db) -> ChatService:
    return ChatService(db, ScriptedBackend(), ChatConfig(cooldown_s=0.0), moderator=FakeModerator())


def test_control_characters_are_stripped_or_refused():
    assert validate_prompt("Hello\x00 there\x1b[31m") == "Hello there[31m"
    with pytest.raises(InvalidRequest, match="only control characters"):
        validate_prompt("\x00" * 10)


async def test_a_servers_defaults_caps_and_channels_apply(db, chat: ChatService) -> None:
    servers = ServerSettingsRepository(db)
    servers.update("discord", "g1", "mod", defaults={"max_new_tokens": 7}, samples_cap=1)
    finished = await chat.generate(IN_GUILD, "Hi")
    assert finished.generations[0].params["max_new_tokens"] == 7  # the server's default
    with pytest.raises(InvalidRequest, match="at most 1 samples"):
        await chat.generate(IN_GUILD, "Hi", {"samples": 2})
    elsewhere = Origin("discord", "alice", guild_id="g2", channel_id="c9")
    assert len((await chat.generate(elsewhere, "Hi", {"samples": 2})).generations) == 2

    servers.update("discord", "g1", "mod", allowed_channels=("c2", "c3"))
    with pytest.raises(NotAllowedHere, match="only in <#c2>, <#c3>: ask there"):
        await chat.generate(IN_GUILD, "Hi")


async def test_the_cooldown_counts_valid_requests_per_member(db) -> None:
    chat = ChatService(
        db, ScriptedBackend(), ChatConfig(cooldown_s=30.0), moderator=FakeModerator()
    )
    with pytest.raises(InvalidRequest):
        await chat.generate(IN_GUILD, "Hi", {"temperature": 9})  # invalid: not counted
    await chat.generate(IN_GUILD, "Hi")
    with pytest.raises(CoolingDown, match="ask again in 30 s"):
        await chat.generate(IN_GUILD, "Again")
    await chat.generate(Origin("discord", "bob", "g1", "c1"), "Bob may")
    ServerSettingsRepository(db).update("discord", "g1", "mod", cooldown_s=0.0)
    await chat.generate(IN_GUILD, "The server turned it off")


async def test_a_member_stops_only_their_own_generations(db) -> None:
    backend = ScriptedBackend(chunks=50, delay_s=0.02)
    chat = ChatService(db, backend, ChatConfig(cooldown_s=0.0), moderator=FakeModerator())
    alice = asyncio.ensure_future(chat.generate(IN_GUILD, "A long one"))
    bob = asyncio.ensure_future(chat.generate(Origin("discord", "bob", "g1", "c1"), "Mine"))
    await asyncio.sleep(0.1)
    assert chat.stop(Origin("discord", "carol")) == 0
    assert chat.stop(IN_GUILD) == 1
    with pytest.raises(Cancelled):
        await alice
    assert len((await bob).generations) == 1


async def test_the_apps_chat_reads_its_cooldown_from_settings(settings, tiny_model_dir):
    from tests.conftest import register_active

    register_active(settings, tiny_model_dir)
    app = await App.open(settings)
    try:
        assert app.chat.config.cooldown_s == 0.0  # COOLDOWN_SECONDS=0 in the test settings
    finally:
        await app.close()
