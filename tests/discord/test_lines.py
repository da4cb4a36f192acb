"""Two servers on the fake Discord, the real admin services and a real engine on the tiny model:
the owners give server A a model line; A's admins add texts and retrain it; A's members are
served A's adapter, B's members the shared version, and none of A's texts reach B's or the
shared model's training data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from admin.auth import NO_LINE
from bot.app import App
from bot.chat import ChatConfig
from bot.platforms.discord import DiscordPlatform
from bot.settings import Settings
from storage import RunStatus
from storage.servers import server_key
from tests.admin.test_adapter_versions import LORA_LEARNING
from tests.conftest import register_active
from tests.discord import payloads as p
from tests.discord.conftest import Bot, discord_config
from tests.discord.fake_discord import FakeDiscord
from tests.discord.test_admin import answer, owners

A_TEXTS = [f"The lighthouse keeper number {i} polishes the brass lamp at dusk." for i in range(12)]
SHARED_TEXTS = [f"Shared sample {i} about the town market on Saturday." for i in range(4)]


async def _generate(fake: FakeDiscord, bot: Bot, member: p.Member, guild: int) -> str:
    before = len(bot.generations())
    await fake.slash(
        "generate", {"prompt": "The keeper", "max_new_tokens": 4}, member, guild_id=guild
    )
    await fake.wait_for(lambda: len(bot.generations()) > before, what="the stored generation")
    return bot.generations()[-1].model_version


async def test_a_server_line_is_trained_and_served_to_its_server_only(
    fake: FakeDiscord, settings: Settings, tiny_model_dir: Path
) -> None:
    register_active(settings, tiny_model_dir)  # the shared version
    learning = replace(LORA_LEARNING, promote_tolerance=10.0)  # the tiny model: gate passes
    settings = replace(
        settings, admin=owners(fake.boss), learning=learning, chat=ChatConfig(cooldown_s=0)
    )
    app = await App.open(settings)
    a, b = fake.guild_id, fake.other_guild_id
    config = discord_config(fake, guild_ids=(a, b))
    bot = await Bot(DiscordPlatform(app, config, 0.5), fake).start()
    a_key, b_key = server_key("discord", str(a)), server_key("discord", str(b))
    moderator = p.Member(fake.next_id(), "moderator", permissions=p.MANAGE_GUILD)
    try:
        # server admins may not give themselves a line; in B nothing is enabled
        early = await fake.slash("admin line retrain", member=moderator)
        assert (await answer(fake, early)).content == NO_LINE
        enabled = await fake.slash("admin line enable", member=fake.boss)
        assert "has its own model line" in (await answer(fake, enabled)).content

        # A's data: one text typed by its admin, the rest as `gpt2bot train --server` adds them
        typed = await fake.slash("admin line add", {"text": A_TEXTS[0]}, member=moderator)
        assert "added 1" in (await answer(fake, typed)).content
        await app.admin.lines.add("cli", a_key, A_TEXTS[1:])
        await app.admin.curation.add("owner", SHARED_TEXTS)

        started = await fake.slash("admin line retrain", member=moderator)
        await answer(fake, started)
        run = await app.admin.training.wait()
        assert run is not None and run.status == RunStatus.SUCCEEDED, run
        assert {row["text"] for row in run.dataset_snapshot} == set(A_TEXTS)  # A's only
        adapter = await app.db.run(app.admin.registry.repository.get, run.model_version)
        assert adapter is not None and (adapter.line, adapter.base_version) == (a_key, "tiny-1")
        assert adapter.status == "active"
        shown = await fake.slash("admin line show", member=moderator)
        assert adapter.name in (await answer(fake, shown)).content
        ab = await fake.slash("admin line ab", {"action": "status"}, member=moderator)
        assert "No A/B experiment has run in this line yet" in (await answer(fake, ab)).content
        ab = await fake.slash("admin line ab", {"action": "start"}, member=moderator)
        assert "Name the candidate" in (await answer(fake, ab)).content

        # served: A's member gets A's adapter, B's member the shared version
        b_member = p.Member(fake.next_id(), "bea")
        assert await _generate(fake, bot, fake.alice, a) == adapter.name
        assert await _generate(fake, bot, b_member, b) == "tiny-1"
        assert adapter.name in app.backend.resident_versions  # really served by the engine

        # none of A's texts reach the shared model's or B's training data
        shared = {s.text for s in await app.admin.curation.training_set(True)}
        for_b = {s.text for s in await app.admin.curation.training_set(True, b_key)}
        assert shared == set(SHARED_TEXTS) and for_b == set()

        # B has no line: its admins are refused, audited
        b_admin = p.Member(moderator.id, "moderator", permissions=p.MANAGE_GUILD)
        in_b = await fake.slash("admin line retrain", member=b_admin, guild_id=b)
        assert (await answer(fake, in_b)).content == NO_LINE
        entries = list(reversed(app.gate.audit.recent()))
        lines = [
            (e["action"], e["allowed"], e["scope"], e["server_id"])
            for e in entries
            if e["action"].startswith("line") and e["platform"] == "discord"
        ]
        assert lines == [
            ("line retrain", False, "line", str(a)),
            ("line enable", True, "global", str(a)),
            ("line add", True, "line", str(a)),
            ("line retrain", True, "line", str(a)),
            ("line show", True, "read", str(a)),
            ("line ab", True, "line", str(a)),
            ("line ab", True, "line", str(a)),
            ("line retrain", False, "line", str(b)),
        ]
        # what each change did, by the line service with the line's key (the CLI's "cli" too)
        changes = [
            (e["action"], e["scope"], e["server_id"]) for e in entries if e["platform"] == "line"
        ]
        assert changes == [
            ("line enable", "line", a_key),
            ("line add", "line", a_key),
            ("line add", "line", a_key),
            ("line retrain", "line", a_key),
        ]
    finally:
        await bot.stop()
        await app.close()
