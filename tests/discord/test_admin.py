"""/admin: authorization with audit, and the admin use-cases rendered for Discord."""

from __future__ import annotations

from admin.base import AdminServices
from admin.config import AdminConfig
from admin.fake import PNG_SIGNATURE, FakeAdmin, fake_admin, fake_version
from storage import RunStatus, VersionRatingStats
from tests.discord import payloads as p
from tests.discord.fake_discord import FakeDiscord
from tests.discord.fake_records import Interaction, Message


def seeded_admin() -> FakeAdmin:
    """Fake admin services holding a curated sample, two versions and their rating stats."""
    return fake_admin(
        samples=["a curated *sample*"],
        versions=[
            fake_version("fake-1"),
            fake_version("ft-7", "active", parent="fake-1", metrics={"eval_loss": 3.1}),
        ],
        stats=[VersionRatingStats("fake-1", 10, 4, 0.5, 0.75, 3)],
    )


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


def test_fake_admin_implements_the_services():
    services: AdminServices = fake_admin()  # checked by mypy/pyright too
    assert callable(services.reports.stats_chart)


async def test_non_admin_is_refused_and_audited(fake, start_bot):
    services = seeded_admin()
    bot = await start_bot(services=services, admin=AdminConfig(user_ids=("1",)))

    interaction = await fake.slash("admin model use", {"version": "ft-7"}, member=fake.alice)
    reply = await answer(fake, interaction)

    assert reply.content == "Sorry, only gpt2bot admins can do that. Nothing was changed."
    assert services.calls == []
    assert audit(bot) == [(str(fake.alice.id), "model use", False)]


async def test_administrators_role_holders_and_listed_users_are_admins(fake, start_bot):
    services = seeded_admin()
    carol = p.Member(fake.next_id(), "carol", roles=[fake.admin_role_id])
    dave = p.Member(fake.next_id(), "dave")
    admins = AdminConfig(user_ids=(str(dave.id),), role="gpt2bot-admin")
    bot = await start_bot(services=services, admin=admins)

    listing = await answer(fake, await fake.slash("admin model list", member=fake.boss), "ft-7")
    assert "★ `ft-7` active" in listing.content and "eval loss 3.100" in listing.content
    used = await fake.slash("admin model use", {"version": "fake-1", "force": True}, member=carol)
    assert "Now serving `fake-1`" in (await answer(fake, used)).content
    back = await answer(fake, await fake.slash("admin model rollback", member=dave), "ft-7")
    assert "Now serving `ft-7`" in back.content

    assert ("registry.use", (str(carol.id), "fake-1", True)) in services.calls
    assert ("registry.rollback", str(dave.id)) in services.calls
    assert audit(bot) == [
        (str(fake.boss.id), "model list", True),
        (str(carol.id), "model use", True),
        (str(dave.id), "model rollback", True),
    ]


async def test_stats_come_with_a_chart(fake, start_bot):
    await start_bot(services=seeded_admin())

    reply = await answer(fake, await fake.slash("admin stats", member=fake.boss), "fake-1")

    assert "fake-1" in reply.content and "75%" in reply.content
    [(name, data)] = reply.files
    assert name == "ratings.png" and data.startswith(PNG_SIGNATURE)


async def test_curation_from_text_and_file(fake, start_bot):
    services = seeded_admin()
    await start_bot(services=services)
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

    assert ("curation.add", (boss, ["A good sample."])) in services.calls
    assert ("curation.add_file", (boss, "samples.txt", upload)) in services.calls


async def test_retraining_shows_progress_and_schedule_errors(fake, start_bot):
    services = seeded_admin()
    await start_bot(services=services)

    started = await fake.slash("admin retrain now", member=fake.boss)
    assert "#1**: running" in (await answer(fake, started)).content
    services.training.report(RunStatus.SUCCEEDED, 1.0)
    done = await answer(fake, started, "succeeded")
    assert "held-out loss 3.500 → 3.100" in done.content and "`ft-1` promoted" in done.content

    every_minute = await fake.slash(
        "admin retrain schedule", {"cron": "* * * * *"}, member=fake.boss
    )
    assert "too often" in (await answer(fake, every_minute)).content
    off = await fake.slash("admin retrain schedule", {"cron": "off"}, member=fake.boss)
    assert "Scheduled retraining is off." in (await answer(fake, off)).content
    assert ("training.schedule", (str(fake.boss.id), None)) in services.calls


async def test_the_real_admin_services_answer_admins_only(fake, start_bot):
    """End to end through the real services on the test's database (no fakes past Discord)."""
    bot = await start_bot(real_admin=True)

    status = await answer(fake, await fake.slash("admin retrain status", member=fake.boss))
    refused = await answer(fake, await fake.slash("admin retrain status", member=fake.alice))
    text = {"text": "A sample stored for *real*."}
    added = await answer(fake, await fake.slash("admin curate add", text, member=fake.boss))
    listing = await fake.slash("admin curate list", member=fake.boss)
    listed = await answer(fake, listing, "stored for")

    assert status.content == "No training run yet. Start one with `/admin retrain now`."
    assert refused.content.startswith("Sorry, only gpt2bot admins")
    assert "added 1" in added.content
    assert r"`1` [admin] A sample stored for \*real\*." in listed.content
    assert [allowed for _, _, allowed in audit(bot)] == [True, False, True, True]
