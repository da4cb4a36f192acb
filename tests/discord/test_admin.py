"""/admin: authorization with audit, and the admin use-cases rendered for Discord."""

from __future__ import annotations

from admin.base import AdminService
from bot.platforms.discord.admin_render import NOT_AVAILABLE
from bot.settings import AdminConfig
from tests.discord import payloads as p
from tests.discord.fake_discord import FakeDiscord
from tests.discord.fake_records import Interaction, Message
from tests.discord.fakes import PNG_SIGNATURE, RecordingAdminService


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
    return [(e["actor"], e["action"], e["allowed"]) for e in reversed(bot.app.audit.recent())]


def test_recording_service_implements_the_protocol():
    service: AdminService = RecordingAdminService()  # checked by mypy/pyright too
    assert callable(service.stats_chart)


async def test_non_admin_is_refused_and_audited(fake, start_bot):
    service = RecordingAdminService()
    bot = await start_bot(admin_service=service, admin=AdminConfig(user_ids=("1",)))

    interaction = await fake.slash("admin model use", {"version": "ft-7"}, member=fake.alice)
    reply = await answer(fake, interaction)

    assert reply.content == "Sorry, only gpt2bot admins can do that. Nothing was changed."
    assert service.calls == []
    assert audit(bot) == [(str(fake.alice.id), "model use", False)]


async def test_administrators_role_holders_and_listed_users_are_admins(fake, start_bot):
    service = RecordingAdminService()
    carol = p.Member(fake.next_id(), "carol", roles=[fake.admin_role_id])
    dave = p.Member(fake.next_id(), "dave")
    admins = AdminConfig(user_ids=(str(dave.id),), role="gpt2bot-admin")
    bot = await start_bot(admin_service=service, admin=admins)

    listing = await answer(fake, await fake.slash("admin model list", member=fake.boss), "ft-7")
    assert "★ `ft-7` active" in listing.content and "eval loss 3.100" in listing.content
    used = await fake.slash("admin model use", {"version": "ft-7", "force": True}, member=carol)
    assert "Now serving `ft-7`" in (await answer(fake, used)).content
    back = await answer(fake, await fake.slash("admin model rollback", member=dave), "fake-1")
    assert "Now serving `fake-1`" in back.content

    assert ("model_use", (str(carol.id), "ft-7", True)) in service.calls
    assert audit(bot) == [
        (str(fake.boss.id), "model list", True),
        (str(carol.id), "model use", True),
        (str(dave.id), "model rollback", True),
    ]


async def test_stats_come_with_a_chart(fake, start_bot):
    await start_bot(admin_service=RecordingAdminService())

    reply = await answer(fake, await fake.slash("admin stats", member=fake.boss), "fake-1")

    assert "fake-1" in reply.content and "75%" in reply.content
    [(name, data)] = reply.files
    assert name == "ratings.png" and data.startswith(PNG_SIGNATURE)


async def test_curation_from_text_and_file(fake, start_bot):
    service = RecordingAdminService()
    await start_bot(admin_service=service)
    boss = str(fake.boss.id)

    added = await fake.slash("admin curate add", {"text": "A good sample."}, member=fake.boss)
    assert "added 1" in (await answer(fake, added)).content
    upload = await fake.slash(
        "admin curate add",
        member=fake.boss,
        attachments={"file": ("samples.txt", b"one\ntwo\nthree\n")},
    )
    assert "added 2, skipped 1 duplicates" in (await answer(fake, upload)).content
    missing = await fake.slash("admin curate remove", {"sample_id": 99}, member=fake.boss)
    assert "There is no curated sample 99." in (await answer(fake, missing)).content
    listed = await answer(fake, await fake.slash("admin curate list", member=fake.boss), "`3`")
    assert r"a curated \*sample\*" in listed.content

    assert ("curate_add", (boss, ["A good sample."])) in service.calls
    assert ("curate_add_file", (boss, "samples.txt", b"one\ntwo\nthree\n")) in service.calls


async def test_retraining_shows_progress_and_schedule_errors(fake, start_bot):
    service = RecordingAdminService()
    await start_bot(admin_service=service)

    started = await fake.slash("admin retrain now", member=fake.boss)
    assert "#7**: queued" in (await answer(fake, started)).content
    service.report("succeeded", 1.0)
    done = await answer(fake, started, "succeeded")
    assert "held-out loss 3.500 → 3.100" in done.content and "`ft-7` promoted" in done.content

    every_minute = await fake.slash(
        "admin retrain schedule", {"cron": "* * * * *"}, member=fake.boss
    )
    assert "too often" in (await answer(fake, every_minute)).content
    off = await fake.slash("admin retrain schedule", {"cron": "off"}, member=fake.boss)
    assert "Scheduled retraining is off." in (await answer(fake, off)).content
    assert ("retrain_schedule", (str(fake.boss.id), None)) in service.calls


async def test_admin_commands_say_when_not_available(fake, start_bot):
    bot = await start_bot()  # no admin service wired into the app

    reply = await answer(fake, await fake.slash("admin retrain status", member=fake.boss))
    refused = await answer(fake, await fake.slash("admin retrain status", member=fake.alice))

    assert reply.content == NOT_AVAILABLE
    assert refused.content.startswith("Sorry, only gpt2bot admins")
    assert [allowed for _, _, allowed in audit(bot)] == [True, False]
