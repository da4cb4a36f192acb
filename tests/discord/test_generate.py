"""/generate through the real discord.py client against the fake Discord."""

from __future__ import annotations

import itertools

from discord.utils import remove_markdown

from bot.params import LIMITS
from bot.platforms.discord import render
from bot.settings import AdminConfig
from model.backends.fake import ScriptedBackend
from tests.discord.fake_discord import FakeDiscord
from tests.discord.fake_records import Interaction, Message

DEFERRED, MESSAGE = 5, 4  # interaction callback types


def original(fake: FakeDiscord, interaction: Interaction) -> Message:
    assert interaction.original_id is not None, "the interaction was never answered"
    return fake.messages[interaction.original_id]


async def finished(fake: FakeDiscord, interaction: Interaction, footer: str = "-# #") -> Message:
    """The last message of the answer once its footer and all four reactions are there."""

    def done() -> Message | None:
        if interaction.original_id is None:
            return None
        ids = [interaction.original_id, *interaction.followup_ids]
        last = fake.messages[ids[-1]]
        if footer in last.content and all(
            fake.bot_id in last.reactions.get(e, ()) for e in render.REACTIONS
        ):
            return last
        return None

    return await fake.wait_for(done, what="the final answer with its reactions")


async def ephemeral_reply(fake: FakeDiscord, interaction: Interaction) -> Message:
    def reply() -> Message | None:
        ids = [interaction.original_id, *interaction.followup_ids]
        shown = [fake.messages[i] for i in ids if i is not None and not fake.messages[i].deleted]
        return next((m for m in shown if m.ephemeral and m.content), None)

    return await fake.wait_for(reply, what="an ephemeral reply")


async def test_answer_is_deferred_streamed_and_final(fake, start_bot):
    backend = ScriptedBackend(
        text=lambda request, sample: " one two three four five six seven eight nine ten",
        chunks=10,
        delay_s=0.08,
    )
    bot = await start_bot(backend, edit_interval_s=0.25)

    interaction = await fake.slash("generate", {"prompt": "Count with me:", "temperature": 0.5})
    last = await finished(fake, interaction)

    assert interaction.callback_type == DEFERRED
    assert interaction.callback_at - interaction.created < 3.0
    message = original(fake, interaction)
    assert message is last and not message.ephemeral
    assert message.content.startswith("**Count with me:** one two three")
    assert "ten\n-# #1 · model fake-1 · temp 0.5" in message.content
    # streamed: several edits, but at most one per edit interval (plus the final one)
    streaming = [at for at, text in message.edits if text.endswith(render.CURSOR) or "▌\n" in text]
    assert 2 <= len(streaming) < 10
    gaps = [b - a for a, b in itertools.pairwise(streaming)]
    assert min(gaps) >= 0.2
    [generation] = bot.generations()
    assert generation.message_id == str(message.id)
    assert generation.params["temperature"] == 0.5
    assert generation.output == " one two three four five six seven eight nine ten"


async def test_invalid_option_values_are_refused_privately(fake, start_bot, backend):
    bot = await start_bot()

    too_hot = await fake.slash("generate", {"prompt": "hi", "temperature": 5.0})
    reply = await ephemeral_reply(fake, too_hot)
    assert too_hot.callback_type == MESSAGE  # answered at once, nothing public was posted
    assert "temperature must be a number from 0 to 2" in reply.content

    zero_p = await fake.slash("generate", {"prompt": "hi", "top_p": 0.0})
    assert (
        "top_p must be a number from 0 (exclusive) to 1"
        in (await ephemeral_reply(fake, zero_p)).content
    )

    blank = await fake.slash("generate", {"prompt": "   "})
    assert "The prompt is empty" in (await ephemeral_reply(fake, blank)).content

    assert backend.requests == [] and bot.generations() == []


async def test_busy_answer_says_when_to_retry(fake, start_bot):
    bot = await start_bot(ScriptedBackend(busy_retry_s=12.0))

    interaction = await fake.slash("generate", {"prompt": "hello"})
    reply = await ephemeral_reply(fake, interaction)

    assert reply.content == "⏳ The bot is busy right now: please retry in 12 seconds."
    assert interaction.callback_at - interaction.created < 3.0
    assert bot.generations() == []


async def test_mentions_ping_nobody(fake, start_bot):
    backend = ScriptedBackend(text=lambda request, sample: " @everyone look <@&123> and @here")
    await start_bot(backend)

    interaction = await fake.slash("generate", {"prompt": "@everyone wake up"})
    message = await finished(fake, interaction)

    assert "@everyone wake up" in message.content and "@here" in message.content
    writes = [m for m in fake.messages.values()]
    sent_with_content = [
        mentions
        for m in writes
        for (_, text), mentions in zip(m.edits, m.allowed_mentions, strict=True)
        if text
    ]
    assert sent_with_content and all(m == {"parse": []} for m in sent_with_content)


async def test_long_output_continues_in_follow_ups(fake, start_bot):
    words = " ".join(f"word{i:04d}" for i in range(300))  # 2,699 characters
    long_text = " " + words[:2499]
    await start_bot(ScriptedBackend(text=lambda request, sample: long_text))

    interaction = await fake.slash("generate", {"prompt": "Write a lot"})
    last = await finished(fake, interaction)

    first = original(fake, interaction)
    assert len(interaction.followup_ids) == 1 and last.id == interaction.followup_ids[0]
    assert all(len(m.content) <= render.MESSAGE_LIMIT for m in (first, last))
    assert first.reactions == {} and not first.content.endswith(render.CURSOR)
    body = first.content + last.content.split("\n-# ")[0]
    assert remove_markdown(body) == "Write a lot" + long_text
    assert last.content.split("\n-# ")[1].startswith("#1 · model fake-1")


async def test_each_sample_is_its_own_rateable_message(fake, start_bot):
    bot = await start_bot()

    interaction = await fake.slash("generate", {"prompt": "Twice", "samples": 2, "seed": 5})
    second = await finished(fake, interaction)
    first = original(fake, interaction)

    assert first.content.startswith("**Twice** and then sample 0 with seed 5")
    assert "· sample 1/2 ·" in first.content
    assert second.content.startswith("**Sample 2/2:** and then sample 1 with seed 6")
    assert "· sample 2/2 ·" in second.content
    assert all(fake.bot_id in first.reactions.get(e, ()) for e in render.REACTIONS)
    a, b = bot.generations()
    assert (a.message_id, b.message_id) == (str(first.id), str(second.id))
    assert a.conversation_id == b.conversation_id


async def test_cooldown_and_direct_message_policy(fake, start_bot):
    await start_bot(cooldown_s=60.0, dm_policy="deny")

    first = await fake.slash("generate", {"prompt": "one"})
    await finished(fake, first)
    again = await fake.slash("generate", {"prompt": "two"})
    assert "Slow down" in (await ephemeral_reply(fake, again)).content
    other_user = await fake.slash("generate", {"prompt": "three"}, member=fake.bob)
    await finished(fake, other_user)

    in_dm = await fake.slash("generate", {"prompt": "psst"}, member=fake.boss, in_guild=False)
    assert (await ephemeral_reply(fake, in_dm)).content == render.DM_DENIED


async def test_commands_are_registered_with_the_validation_limits(fake, start_bot):
    await start_bot()

    commands = {c["name"]: c for c in fake.commands[fake.guild_id]}
    options = {o["name"]: o for o in commands["generate"]["options"]}
    for name, (kind, low, high, _, help_text) in LIMITS.items():
        assert options[name]["min_value"] == low
        assert options[name]["max_value"] == min(high, 2**53 - 1)
        assert options[name]["type"] == (4 if kind is int else 10)
        assert options[name]["description"] == help_text
    assert options["prompt"]["required"] and options["prompt"]["max_length"] == 2000
    assert commands["admin"]["default_member_permissions"] == "32"  # Manage Server
    assert None not in fake.commands  # guild sync only: no global registration


async def test_global_commands_are_synced_only_when_changed(fake, start_bot):
    first = await start_bot(guild_ids=())
    await first.stop()
    second = await start_bot(guild_ids=())
    await second.stop()

    puts = fake.calls_to("PUT", "/commands")
    assert len(puts) == 1 and puts[0].path.endswith(f"/applications/{fake.app_id}/commands")
    assert len(fake.calls_to("GET", "/commands")) == 2
    assert fake.transport_compression == ["zlib-stream", "zlib-stream"]


class BrokenBackend(ScriptedBackend):
    def submit(self, request):
        raise RuntimeError("CUDA exploded")


async def test_internal_errors_show_an_incident_id_not_a_traceback(fake, start_bot, caplog):
    await start_bot(BrokenBackend())

    reply = await ephemeral_reply(fake, await fake.slash("generate", {"prompt": "hi"}))

    assert "Something went wrong on our side (incident `" in reply.content
    assert "CUDA" not in reply.content and "Traceback" not in reply.content
    incident = reply.content.split("`")[1]
    assert any(incident in r.getMessage() and r.exc_info for r in caplog.records)


async def test_no_privileged_intents_are_requested(fake, start_bot):
    await start_bot()
    [identify] = fake.identify_payloads
    privileged = (1 << 1) | (1 << 8) | (1 << 15)  # members, presences, message content
    assert identify["intents"] & privileged == 0
    assert identify["intents"] & (1 << 10)  # guild message reactions


async def test_slow_start_is_deferred_at_once_and_shows_the_queue(fake, start_bot):
    backend = ScriptedBackend(start_delay_s=2.0, queued_at=3, delay_s=0.3)
    await start_bot(backend, edit_interval_s=0.1)

    interaction = await fake.slash("generate", {"prompt": "wait for it"})
    await finished(fake, interaction)

    assert interaction.callback_type == DEFERRED
    assert interaction.callback_at - interaction.created < 1.5  # not after the 2 s start
    shown = [text for _, text in original(fake, interaction).edits]
    assert any(text.endswith("-# queued: position 3") for text in shown)
    assert any(text.endswith("-# queued: position 2") for text in shown)


async def test_direct_messages_for_listed_admins_only(fake, start_bot):
    await start_bot(dm_policy="admins", admin=AdminConfig(user_ids=(str(fake.bob.id),)))

    refused = await fake.slash("generate", {"prompt": "psst"}, member=fake.boss, in_guild=False)
    assert (await ephemeral_reply(fake, refused)).content == render.DM_ADMINS_ONLY
    allowed = await fake.slash("generate", {"prompt": "psst"}, member=fake.bob, in_guild=False)
    assert (await finished(fake, allowed)).content.startswith("**psst**")


async def test_an_interaction_discord_forgot_is_one_log_line_and_no_more_calls(
    fake, start_bot, backend, caplog
):
    await start_bot()
    fake.ack_deadline_s = 0.0  # every acknowledgement now comes too late

    interaction = await fake.slash("generate", {"prompt": "too late"})
    await fake.wait_for(lambda: interaction.late_callbacks, what="the refused acknowledgement")
    await fake.wait_for(lambda: "not acknowledged within" in caplog.text, what="the log line")

    [line] = [r for r in caplog.records if "not acknowledged within" in r.getMessage()]
    assert line.levelname == "WARNING" and line.exc_info is None
    assert not any(r.exc_info for r in caplog.records)  # no traceback anywhere
    assert len(fake.calls_to("POST", "/callback")) == 1  # no second try at an ephemeral note
    assert fake.calls_to("POST", "/webhooks") == []
