"""/admin: authorization with audit, and the admin use-cases rendered for Discord."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from admin.auth import ADMINS_ONLY, OWNERS_ONLY
from admin.base import AdminServices, ProgressCallback
from admin.config import AdminConfig
from admin.errors import Invalid, PromotionRefused, Unknown, no_version
from admin.fake import (
    PNG_SIGNATURE,
    NotScripted,
    ScriptedAdmin,
    run_record,
    scripted_admin,
    version_record,
)
from admin.results import CurationReport
from storage import (
    CuratedSampleRecord,
    CuratedSampleRepository,
    GenerationRepository,
    NewGeneration,
    RunStatus,
    VersionRatingStats,
)
from tests.discord import payloads as p
from tests.discord.fake_discord import FakeDiscord
from tests.discord.fake_records import Interaction, Message


def sample(sample_id: int, text: str) -> CuratedSampleRecord:
    return CuratedSampleRecord(sample_id, text, "admin", "admin", datetime.now(UTC), True)


def seeded_admin(answers: dict[str, Any] | None = None) -> ScriptedAdmin:
    """Admin services holding a curated sample, two versions (`ft-7` active) and their rating
    stats; `model use` and `rollback` switch to the version asked for; `answers` add more."""
    versions = [
        version_record("fake-1"),
        version_record(
            "ft-7", "active", parent="fake-1", base_version="fake-1", metrics={"eval_loss": 3.1}
        ),
    ]
    return scripted_admin(
        {
            "curation.recent": lambda limit: [sample(1, "a curated *sample*")],
            "registry.versions": versions,
            "registry.use": lambda actor, version, force: version_record(version, "active"),
            "registry.rollback": lambda actor: version_record("ft-7", "active"),
            "reports.stats": [VersionRatingStats("fake-1", 10, 4, 0.5, 0.75, 3)],
            **(answers or {}),
        }
    )


def retraining(progress: list[ProgressCallback]) -> dict[str, Any]:
    """Answers for a retrain that runs until the test calls `progress[0](run)`."""

    def start(actor: str, report: ProgressCallback, *options: Any) -> Any:
        progress.append(report)
        return run_record(1, RunStatus.RUNNING, actor, progress=0.4)

    return {"training.start": start}


def called(services: ScriptedAdmin, *names: str) -> list[tuple[str, tuple[Any, ...]]]:
    """The calls of these names, in order."""
    return [call for call in services.calls if call[0] in names]


async def answer(fake: FakeDiscord, interaction: Interaction, contains: str = "") -> Message:
    def shown() -> Message | None:
        if interaction.original_id is None:
            return None
        message = fake.messages[interaction.original_id]
        return message if message.content and contains in message.content else None

    message = await fake.wait_for(shown, what=f"an admin answer containing {contains!r}")
    assert message.ephemeral
    return message


def audit(bot) -> list[tuple[str, str, bool]]:
    return [(e["actor"], e["action"], e["allowed"]) for e in reversed(bot.app.gate.audit.recent())]


def owners(*members: p.Member) -> AdminConfig:
    """ADMIN_USER_IDS naming these members: the bot's owners."""
    return AdminConfig(user_ids=tuple(str(m.id) for m in members))


async def test_the_scripted_admin_answers_what_the_test_says():
    services: AdminServices = scripted_admin({"registry.remove": Unknown("no such version")})
    assert callable(services.reports.stats_chart)
    assert (await services.reports.stats_chart()).startswith(PNG_SIGNATURE)
    with pytest.raises(Unknown, match="no such version"):
        await services.registry.remove("ann", "v1")
    with pytest.raises(NotScripted, match=r"registry\.rollback"):
        await services.registry.rollback("ann")
    with pytest.raises(AttributeError):
        services.registry.promote  # type: ignore[attr-defined]  # noqa: B018 (not in the seam)
    assert isinstance(services, ScriptedAdmin)
    assert services.calls == [
        ("reports.stats_chart", ()),
        ("registry.remove", ("ann", "v1")),
        ("registry.rollback", ("ann",)),
    ]


async def test_non_admin_is_refused_and_audited(fake, start_bot):
    services = seeded_admin()
    bot = await start_bot(services=services, admin=AdminConfig(user_ids=("1",)))

    interaction = await fake.slash("admin model use", {"version": "ft-7"}, member=fake.alice)
    reply = await answer(fake, interaction)

    assert reply.content == OWNERS_ONLY
    assert services.calls == [("experiments.resume", ())]  # the app's start-up only
    assert audit(bot) == [(str(fake.alice.id), "model use", False)]


async def test_only_owners_change_the_shared_model_and_role_names_grant_nothing(fake, start_bot):
    services = seeded_admin()
    carol = p.Member(fake.next_id(), "carol", roles=[fake.admin_role_id])  # "gpt2bot-admin"
    dave = p.Member(fake.next_id(), "dave")
    bot = await start_bot(services=services, admin=owners(dave))

    # the server's Administrator may look, not switch the model every server uses
    listing = await answer(fake, await fake.slash("admin model list", member=fake.boss), "ft-7")
    assert "★ `ft-7` active" in listing.content and "eval loss 3.100" in listing.content
    assert "`ft-7` active · adapter of `fake-1`" in listing.content  # an adapter names its base
    assert "`fake-1` retired · full model" in listing.content
    for member in (fake.boss, carol):
        tried = await fake.slash("admin model use", {"version": "fake-1"}, member=member)
        assert (await answer(fake, tried)).content == OWNERS_ONLY
    for command in ("admin retrain now", "admin model rollback", "admin curate list"):
        assert (await answer(fake, await fake.slash(command, member=fake.boss))).content == (
            OWNERS_ONLY
        )
    used = await fake.slash("admin model use", {"version": "fake-1", "force": True}, member=dave)
    assert "Now serving `fake-1`" in (await answer(fake, used)).content
    back = await answer(fake, await fake.slash("admin model rollback", member=dave), "ft-7")
    assert "Now serving `ft-7`" in back.content

    assert called(services, "registry.use", "registry.rollback") == [
        ("registry.use", (str(dave.id), "fake-1", True)),
        ("registry.rollback", (str(dave.id),)),
    ]
    boss, carol_id = str(fake.boss.id), str(carol.id)
    assert audit(bot) == [
        (boss, "model list", True),
        (boss, "model use", False),
        (carol_id, "model use", False),
        (boss, "retrain now", False),
        (boss, "model rollback", False),
        (boss, "curate list", False),
        (str(dave.id), "model use", True),
        (str(dave.id), "model rollback", True),
    ]
    entry = bot.app.gate.audit.recent()[-2]  # the Administrator's refused model use
    assert (entry["scope"], entry["server_id"]) == ("global", str(fake.guild_id))


async def test_a_server_admin_sets_their_own_server_only(fake, start_bot):
    """Two servers: the moderator manages server A; B's settings and the model stay out of
    reach. The settings then shape /generate in A."""
    moderator = p.Member(fake.next_id(), "moderator", permissions=p.MANAGE_GUILD)
    guilds = (fake.guild_id, fake.other_guild_id)
    bot = await start_bot(real_admin=True, guild_ids=guilds)
    a, b = str(fake.guild_id), str(fake.other_guild_id)

    set_a = await fake.slash("admin server cooldown", {"seconds": 30}, member=moderator)
    assert "cooldown per member: 30 s" in (await answer(fake, set_a, "Saved")).content
    caps = await fake.slash("admin server caps", {"max_new_tokens": 8}, member=moderator)
    assert "max_new_tokens ≤ 8" in (await answer(fake, caps, "Saved")).content
    in_b = p.Member(moderator.id, "moderator")  # in server B they hold no permission
    set_b = await fake.slash(
        "admin server cooldown", {"seconds": 0}, member=in_b, guild_id=fake.other_guild_id
    )
    assert (await answer(fake, set_b)).content == ADMINS_ONLY
    model = await fake.slash("admin retrain now", member=moderator)
    assert (await answer(fake, model)).content == OWNERS_ONLY

    servers = bot.app.admin.servers
    assert (await servers.get("discord", a)).cooldown_s == 30.0
    assert (await servers.get("discord", b)).cooldown_s is None
    scoped = [
        (e["action"], e["allowed"], e["scope"], e["server_id"])
        for e in reversed(bot.app.gate.audit.recent())
    ]
    assert scoped == [
        ("server cooldown", True, "server", a),
        ("server caps", True, "server", a),
        ("server cooldown", False, "server", b),
        ("retrain now", False, "global", a),
    ]

    too_long = await fake.slash("generate", {"prompt": "hi", "max_new_tokens": 20})
    assert "at most 8 new tokens" in (await answer(fake, too_long)).content


async def test_channels_limit_where_members_generate(fake, start_bot):
    await start_bot(real_admin=True, admin=owners(fake.boss))
    chosen = {"channels": f"<#{fake.other_channel_id}>"}
    saved = await fake.slash("admin server channels", chosen, member=fake.boss)
    assert f"/generate in: <#{fake.other_channel_id}>" in (await answer(fake, saved)).content

    refused = await fake.slash("generate", {"prompt": "hello"})
    assert (await answer(fake, refused)).content == (
        f"⚠️ This server uses gpt2bot only in <#{fake.other_channel_id}>: ask there."
    )


async def test_long_admin_answers_come_in_pages(fake, start_bot):
    long_texts = [f"Sample {i}: " + "a fairly long training sentence " * 4 for i in range(50)]
    samples = [sample(i + 1, text) for i, text in enumerate(long_texts)]
    services = scripted_admin({"curation.recent": lambda limit: samples[:limit]})
    await start_bot(services=services, admin=owners(fake.boss))

    interaction = await fake.slash("admin curate list", {"limit": 50}, member=fake.boss)
    first = await answer(fake, interaction, "Sample")
    pages = await fake.wait_for(
        lambda: (
            [m for m in fake.messages.values() if m.ephemeral and "Sample" in m.content]
            if len([m for m in fake.messages.values() if "Sample" in m.content]) > 2
            else None
        ),
        what="the follow-up pages",
    )
    assert first in pages and all(len(m.content) <= 2000 for m in pages)
    shown = "".join(m.content for m in pages)
    assert all(f"Sample {i}:" in shown for i in range(50))


async def test_stats_come_with_a_chart(fake, start_bot):
    await start_bot(services=seeded_admin(), admin=owners(fake.boss))

    reply = await answer(fake, await fake.slash("admin stats", member=fake.boss), "fake-1")

    assert "fake-1" in reply.content and "75%" in reply.content
    [(name, data)] = reply.files
    assert name == "ratings.png" and data.startswith(PNG_SIGNATURE)


async def test_curation_from_text_and_file(fake, start_bot):
    services = seeded_admin(
        {
            "curation.add": CurationReport(1),
            "curation.add_file": CurationReport(2, {"duplicates": 1}),
            "curation.remove": Unknown("There is no curated sample 99."),
        }
    )
    await start_bot(services=services, admin=owners(fake.boss))
    boss = str(fake.boss.id)
    upload = b"one\ntwo\nA good sample.\n"  # the last line was added already

    added = await fake.slash("admin curate add", {"text": "A good sample."}, member=fake.boss)
    assert "added 1" in (await answer(fake, added)).content
    uploaded = await fake.slash(
        "admin curate add", member=fake.boss, attachments={"file": ("samples.txt", upload)}
    )
    assert "added 2, skipped 1 duplicates" in (await answer(fake, uploaded)).content
    missing = await fake.slash("admin curate remove", {"sample_id": 99}, member=fake.boss)
    assert "There is no curated sample 99." in (await answer(fake, missing)).content
    listing = await fake.slash("admin curate list", member=fake.boss)
    listed = await answer(fake, listing, r"\*sample\*")
    assert r"`1` [admin] a curated \*sample\*" in listed.content

    assert called(services, "curation.add", "curation.add_file", "curation.remove") == [
        ("curation.add", (boss, ["A good sample."])),
        ("curation.add_file", (boss, "samples.txt", upload)),
        ("curation.remove", (boss, 99)),
    ]


async def test_retraining_shows_progress_and_schedule_errors(fake, start_bot):
    def schedule(actor: str, cron: str | None) -> list[datetime]:
        if cron is not None:
            raise Invalid("Retraining every minute is too often: use at most hourly.")
        return []

    progress: list[ProgressCallback] = []
    services = seeded_admin({**retraining(progress), "training.schedule": schedule})
    await start_bot(services=services, admin=owners(fake.boss))

    started = await fake.slash("admin retrain now", member=fake.boss)
    assert "#1**: running" in (await answer(fake, started)).content
    progress[0](run_record(1, RunStatus.SUCCEEDED))
    done = await answer(fake, started, "succeeded")
    assert "held-out loss 3.500 → 3.100" in done.content and "`ft-1` promoted" in done.content

    every_minute = await fake.slash(
        "admin retrain schedule", {"cron": "* * * * *"}, member=fake.boss
    )
    assert "too often" in (await answer(fake, every_minute)).content
    off = await fake.slash("admin retrain schedule", {"cron": "off"}, member=fake.boss)
    assert "Scheduled retraining is off." in (await answer(fake, off)).content
    assert called(services, "training.schedule") == [
        ("training.schedule", (str(fake.boss.id), "* * * * *")),
        ("training.schedule", (str(fake.boss.id), None)),
    ]


async def test_the_real_admin_services_answer_admins_only(fake, start_bot):
    """End to end through the real services on the test's database (no fakes past Discord)."""
    bot = await start_bot(real_admin=True, admin=owners(fake.boss))

    status = await answer(fake, await fake.slash("admin retrain status", member=fake.boss))
    refused = await answer(fake, await fake.slash("admin retrain status", member=fake.alice))
    text = {"text": "A sample stored for *real*."}
    added = await answer(fake, await fake.slash("admin curate add", text, member=fake.boss))
    listing = await fake.slash("admin curate list", member=fake.boss)
    listed = await answer(fake, listing, "stored for")

    assert status.content == "No training run yet. Start one with `/admin retrain now`."
    assert refused.content == ADMINS_ONLY  # a member may not even look
    assert "added 1" in added.content
    assert r"`1` [admin] A sample stored for \*real\*." in listed.content
    assert [allowed for _, _, allowed in audit(bot)] == [True, False, True, True]


async def test_retrain_progress_outliving_the_interaction_goes_to_the_channel(fake, start_bot):
    progress: list[ProgressCallback] = []
    await start_bot(services=seeded_admin(retraining(progress)), admin=owners(fake.boss))
    started = await fake.slash("admin retrain now", member=fake.boss)
    await answer(fake, started, "running")

    del fake.interactions[started.token]  # Discord forgets the token after 15 minutes
    progress[0](run_record(1, RunStatus.SUCCEEDED))

    def posted() -> Message | None:
        return next(
            (m for m in fake.channel_messages() if "succeeded" in m.content and not m.ephemeral),
            None,
        )

    note = await fake.wait_for(posted, what="the progress posted in the channel")
    assert note.content.startswith(f"<@{fake.boss.id}> **Training run #1**: succeeded")
    assert note.allowed_mentions == [{"parse": []}]


async def test_a_server_admin_deletes_an_output_made_in_their_server(fake, start_bot):
    moderator = p.Member(fake.next_id(), "moderator", permissions=p.MANAGE_GUILD)
    bot = await start_bot(real_admin=True, guild_ids=(fake.guild_id, fake.other_guild_id))
    posted = await fake.slash("generate", {"prompt": "Something rude"})
    await fake.wait_for(lambda: bot.generations() or None, what="the generation")
    (record,) = bot.generations()
    await fake.wait_for(lambda: bot.generations()[0].message_id or None, what="its message")

    elsewhere = await fake.slash(
        "admin server delete",
        {"generation": record.id},
        member=moderator,
        guild_id=fake.other_guild_id,
    )
    # an admin of server B (Manage Server there too) cannot reach server A's outputs
    assert (await answer(fake, elsewhere)).content == "⚠️ There is no generation #1 in this server."
    assert bot.generations()[0].prompt == "Something rude"
    done = await fake.slash("admin server delete", {"generation": record.id}, member=moderator)
    assert "is deleted" in (await answer(fake, done)).content

    (gone,) = bot.generations()
    assert (gone.prompt, gone.output, gone.redacted) == ("", "", True)
    assert fake.messages[int(gone.message_id)].deleted
    assert posted.original_id is not None


async def test_owners_review_rating_derived_samples_in_one_command(fake, start_bot):
    bot = await start_bot(real_admin=True, admin=owners(fake.boss))
    generations = GenerationRepository(bot.app.db)
    new = NewGeneration("discord", "alice", "A rated", " output", {}, 1, "fake-1", 1, 1, 0.1)
    generation = generations.add(new)
    for rater in ("alice", "bob", "carol", "dave"):  # alice's own 👍 does not count
        generations.rate(generation.id, rater, 1, "👍")

    queue = await answer(fake, await fake.slash("admin curate queue", member=fake.boss), "Waiting")
    assert "`1` (👍 3 / 👎 0, bound 0.438) A rated output" in queue.content
    refused = await answer(fake, await fake.slash("admin curate queue", {"approve": 1}, fake.alice))
    approved = await fake.slash("admin curate queue", {"approve": 1}, member=fake.boss)
    assert "Sample `1` approved" in (await answer(fake, approved)).content
    again = await fake.slash("admin curate queue", {"reject": 1}, member=fake.boss)
    assert "No curated sample 1 is waiting" in (await answer(fake, again)).content
    assert refused.content == OWNERS_ONLY
    (sample,) = CuratedSampleRepository(bot.app.db).active()
    assert sample.reviewed_by == str(fake.boss.id) and sample.why["raters"] == [
        "bob",
        "carol",
        "dave",
    ]
    assert [ok for _, action, ok in audit(bot) if action == "curate queue"] == [
        True,
        False,
        True,
        True,
    ]


async def test_reports_hide_an_output_until_a_server_admin_decides(fake, start_bot):
    moderator = p.Member(fake.next_id(), "moderator", permissions=p.MANAGE_GUILD)
    carol = p.Member(fake.next_id(), "carol")
    bot = await start_bot(real_admin=True)
    bot.app.chat.config = replace(bot.app.chat.config, reports_to_hide=2)
    posted = await fake.slash("generate", {"prompt": "Hello there"})
    await fake.wait_for(
        lambda: (bot.generations() and bot.generations()[0].message_id) or None,
        what="the output and its message",
    )
    (record,) = bot.generations()
    message = fake.messages[int(record.message_id)]

    await fake.react(message.id, "🚩", fake.bob)
    await fake.react(message.id, "🚩", fake.bob)  # the same member twice counts once
    await asyncio.sleep(0.2)
    assert not bot.generations()[0].hidden
    await fake.react(message.id, "🚩", carol)
    await fake.wait_for(lambda: bot.generations()[0].hidden or None, what="the output hidden")
    await fake.wait_for(
        lambda: "hidden after members reported" in message.content or None,
        what="the message hidden",
    )

    listed = await answer(fake, await fake.slash("admin server reports", member=moderator))
    assert f"`#{record.id}` · 2 report(s)" in listed.content
    kept = await fake.slash("admin server keep", {"generation": record.id}, member=moderator)
    assert "shown again" in (await answer(fake, kept)).content
    assert not bot.generations()[0].hidden
    assert posted.original_id is not None


async def test_a_gate_refusal_says_why_and_how_to_force(fake, start_bot):
    """The promotion gate's refusal is the admin's answer, not an incident: its reason and
    Discord's way to force it; forcing then switches."""

    def use(actor: str, version: str, force: bool) -> Any:
        if version == "v9":
            raise no_version(version)
        if not force:
            raise PromotionRefused(
                f"{version} was not promoted: its held-out loss 3.4000 is worse than the "
                "active ft-7's 3.1000."
            )
        return version_record(version, "active", parent="ft-7", metrics={"eval_loss": 3.4})

    await start_bot(services=seeded_admin({"registry.use": use}), admin=owners(fake.boss))

    refused = await fake.slash("admin model use", {"version": "ft-8"}, member=fake.boss)
    reply = (await answer(fake, refused, "ft-8")).content

    assert reply == (
        "⚠️ ft-8 was not promoted: its held-out loss 3.4000 is worse than the active ft-7's "
        "3.1000. To promote it anyway, run `/admin model use` again with `force:True`."
    )
    assert "incident" not in reply
    forced = await fake.slash(
        "admin model use", {"version": "ft-8", "force": True}, member=fake.boss
    )
    assert "Now serving `ft-8`" in (await answer(fake, forced)).content
    unknown = await fake.slash("admin model use", {"version": "v9"}, member=fake.boss)
    assert (await answer(fake, unknown)).content == (
        "⚠️ There is no model version named 'v9'; the model list shows them."
    )
