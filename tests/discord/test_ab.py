"""/admin ab start|status|stop and the experiment in /admin stats, through real discord.py
offline over the real experiment and review services on the test's database."""

from __future__ import annotations

from admin.auth import ADMINS_ONLY, OWNERS_ONLY
from admin.fake import PNG_SIGNATURE
from bot.chat import Origin
from model.backends.fake import ScriptedBackend
from storage import ModelVersionRepository
from tests.discord import payloads as p
from tests.discord.test_admin import answer, audit, owners


def register(bot, *names: str) -> None:
    versions = ModelVersionRepository(bot.app.db)
    for name in names:
        versions.add(name, f"/models/{name}", "bootstrap")
    versions.activate(names[0])


async def candidate_member(bot) -> str:
    """A member the running experiment serves the candidate."""
    for n in range(1000):
        arm = await bot.app.admin.experiments.arm_for("discord", str(9000 + n))
        if arm is not None and arm.arm == "candidate":
            return str(9000 + n)
    raise AssertionError("nobody drew the candidate")


async def test_owners_start_and_stop_an_experiment_that_admins_can_watch(fake, start_bot):
    dave = p.Member(fake.next_id(), "dave")  # the bot's owner; boss administers the server
    bot = await start_bot(ScriptedBackend(model_version="v1"), real_admin=True, admin=owners(dave))
    register(bot, "v1", "v2", "v3")

    refused = await fake.slash("admin ab start", {"version": "v2"}, member=fake.boss)
    assert (await answer(fake, refused)).content == OWNERS_ONLY
    none_yet = await answer(fake, await fake.slash("admin ab status", member=fake.boss))
    assert none_yet.content.startswith("No A/B experiment has run yet")
    active = await fake.slash("admin ab start", {"version": "v1"}, member=dave)
    assert "v1 is the active version already" in (await answer(fake, active, "⚠️")).content
    unknown = await fake.slash("admin ab start", {"version": "v9"}, member=dave)
    assert "no model version named 'v9'" in (await answer(fake, unknown, "⚠️")).content

    started = await fake.slash("admin ab start", {"version": "v2", "share": 0.3}, member=dave)
    shown = await answer(fake, started, "Started")
    assert "**A/B experiment #1: running**" in shown.content
    assert "control `v1` (70% of members): 0 generations · 0 ratings · no ratings yet" in (
        shown.content
    )
    assert "candidate `v2` (30% of members)" in shown.content
    assert "Blind review of this pair: no verdicts yet" in shown.content
    [(name, chart)] = shown.files
    assert name == "ab.png" and chart.startswith(PNG_SIGNATURE)
    second = await fake.slash("admin ab start", {"version": "v3"}, member=dave)
    assert "only one runs at a time" in (await answer(fake, second, "⚠️")).content

    # a member served by the candidate writes; someone else likes it; the owners judge
    member = await candidate_member(bot)
    finished = await bot.app.chat.generate(Origin("discord", member), "Hello")
    await bot.app.chat.rate(finished.generations[0].id, str(fake.alice.id), "👍")
    reviews = bot.app.admin.reviews
    item = await reviews.next_item(str(dave.id), "v1", "v2")
    await reviews.record(str(dave.id), item.id, "tie")

    watched = await answer(fake, await fake.slash("admin ab status", member=fake.boss), "#1")
    assert "candidate `v2` (30% of members): 1 generations · 1 ratings · 👍 100%" in (
        watched.content
    )
    assert "decision so far: continue" in watched.content
    assert "Blind review of this pair: 1 judged · `v2` won 0, `v1` won 0, 1 tied (`v2` 50%" in (
        watched.content
    )
    member_refused = await answer(fake, await fake.slash("admin ab status", member=fake.alice))
    assert member_refused.content == ADMINS_ONLY

    stopped = await answer(fake, await fake.slash("admin ab stop", member=dave), "Stopped")
    assert "**A/B experiment #1: stopped**" in stopped.content
    assert f"stopped undecided (stopped by {dave.id})" in stopped.content
    again = await fake.slash("admin ab stop", member=dave)
    assert "nothing to stop" in (await answer(fake, again, "⚠️")).content
    assert await bot.app.admin.experiments.candidate() is None

    ab_actions = [(who, action, ok) for who, action, ok in audit(bot) if action.startswith("ab")]
    boss, owner = str(fake.boss.id), str(dave.id)
    assert ab_actions[:3] == [
        (boss, "ab start", False),
        (boss, "ab status", True),
        (owner, "ab start", True),
    ]
    assert (owner, "ab stop", True) in ab_actions


async def test_stats_show_the_experiment_with_a_chart_of_both_arms(fake, start_bot):
    dave = p.Member(fake.next_id(), "dave")
    bot = await start_bot(ScriptedBackend(model_version="v1"), real_admin=True, admin=owners(dave))
    register(bot, "v1", "v2")
    plain = await answer(fake, await fake.slash("admin stats", member=fake.boss))
    assert "A/B experiment" not in plain.content and len(plain.files) == 1

    await bot.app.admin.experiments.start(str(dave.id), "v2")
    stats = await answer(fake, await fake.slash("admin stats", member=fake.boss), "A/B")
    assert "**A/B experiment #1: running**" in stats.content
    assert "P(candidate better) = 0.50 · decision so far: continue" in stats.content
    assert [name for name, _ in stats.files] == ["ratings.png", "ab.png"]
    assert all(data.startswith(PNG_SIGNATURE) for _, data in stats.files)
