"""Talking to the bot in messages, through the real discord.py client on the fake Discord:
replies continue an output, mentions generate, story threads, prompt templates, direct
messages, and the refusals members meet."""

from __future__ import annotations

from bot.platforms.discord import render
from model.backends.base import GenerationRequest
from model.backends.fake import ScriptedBackend
from storage import GenerationRepository, ServerSettingsRepository
from tests.discord.fake_discord import FakeDiscord
from tests.discord.fake_records import Message
from tests.discord.test_generate import ephemeral_reply, finished
from tests.discord.test_members import reply_text


async def answer_to(fake: FakeDiscord, message: Message) -> Message:
    """The bot's finished reply to a member's message: footer and rating reactions there."""

    def done() -> Message | None:
        for reply in fake.replies_to(message.id):
            rated = all(fake.bot_id in reply.reactions.get(e, ()) for e in render.REACTIONS)
            if "-# #" in reply.content and rated:
                return reply
        return None

    return await fake.wait_for(done, what=f"the answer to {message.content!r}")


async def note_to(fake: FakeDiscord, message: Message, words: str) -> Message:
    """The bot's short reply (a refusal or a hint) to a member's message."""

    def found() -> Message | None:
        return next((m for m in fake.replies_to(message.id) if words in m.content), None)

    return await fake.wait_for(found, what=f"a reply saying {words!r}")


async def test_a_reply_to_an_output_continues_it_with_the_reply_s_words(fake, start_bot):
    bot = await start_bot()
    output = await finished(fake, await fake.slash("generate", {"prompt": "Once upon a time"}))

    said = await fake.say("a dragon woke up", member=fake.bob, reply_to=output.id)
    answer = await answer_to(fake, said)

    first, child = bot.generations()
    assert (child.kind, child.parent_id, child.user_id) == ("reply", first.id, str(fake.bob.id))
    assert child.conversation_id == first.conversation_id
    assert child.prompt == first.prompt + first.output + "\na dragon woke up"
    assert child.message_id == str(answer.id)
    assert answer.content.startswith("…" + render.output_body(None, child.output))
    # rated like any other output
    await fake.react(answer.id, "👍", fake.alice)
    await fake.wait_for(lambda: bot.generations()[-1].ratings or None, what="the rating")
    # a reply to the continuation goes on from there
    again = await fake.say("and flew away", reply_to=answer.id)
    await answer_to(fake, again)
    grandchild = bot.generations()[-1]
    assert grandchild.parent_id == child.id and grandchild.prompt.endswith("\nand flew away")


async def test_a_mention_generates_and_other_talk_is_ignored(fake, start_bot):
    bot = await start_bot()
    quiet = await fake.say("just chatting with friends")
    among_members = await fake.say("me too", member=fake.bob, reply_to=quiet.id)
    said = await fake.say("Write about the sea", mention=True)
    answer = await answer_to(fake, said)

    [generation] = bot.generations()
    assert generation.prompt == "Write about the sea" and generation.kind == "new"
    assert answer.content.startswith("**Write about the sea**")
    assert fake.replies_to(quiet.id) == [] and fake.replies_to(among_members.id) == []


async def test_a_reply_whose_text_discord_withholds_gets_a_hint(fake, start_bot):
    bot = await start_bot()
    output = await finished(fake, await fake.slash("generate", {"prompt": "Hello"}))
    # the member turned @mention off: without the message-content intent the text is empty
    said = await fake.say("go on", reply_to=output.id, mention=False)
    await note_to(fake, said, "mention me")
    assert len(bot.generations()) == 1


async def test_a_reply_in_a_channel_that_is_not_allowed_is_refused(fake, start_bot):
    bot = await start_bot(real_admin=True)
    output = await finished(fake, await fake.slash("generate", {"prompt": "Hello"}))
    elsewhere = fake.next_id()
    await reply_text(
        fake, await fake.slash("admin server channels", {"channels": f"<#{elsewhere}>"}, fake.boss)
    )

    said = await fake.say("more please", reply_to=output.id)
    note = await note_to(fake, said, "⚠️")
    assert f"<#{elsewhere}>" in note.content
    assert len(bot.generations()) == 1


async def test_a_channel_template_wraps_the_prompt_and_is_stored_and_shown(fake, start_bot):
    bot = await start_bot(real_admin=True)
    refused = await fake.slash("admin server template", {"text": "Answer briefly:"}, fake.boss)
    assert "{prompt} exactly once" in await reply_text(fake, refused)
    saved = await fake.slash(
        "admin server template",
        {"text": "Q: {prompt}\\nA:", "channel": f"<#{fake.channel_id}>"},
        fake.boss,
    )
    assert "prompt template" in await reply_text(fake, saved)
    shown = await reply_text(fake, await fake.slash("admin server show", member=fake.boss))
    assert f"<#{fake.channel_id}>: `Q: {{prompt}}\\nA:`" in shown

    output = await finished(fake, await fake.slash("generate", {"prompt": "Why is the sky blue?"}))
    said = await fake.say("Why is grass green?", mention=True)
    await answer_to(fake, said)

    made, mentioned = bot.generations()
    assert made.prompt == "Q: Why is the sky blue?\nA:" and made.template == "Q: {prompt}\nA:"
    assert mentioned.prompt == "Q: Why is grass green?\nA:"
    assert "template `Q: {prompt}" in output.content
    # elsewhere in the server, no template
    other = await finished(
        fake, await fake.slash("generate", {"prompt": "Plain"}, guild_id=fake.other_guild_id)
    )
    assert "template" not in other.content.split("-# ")[1]


async def test_a_story_thread_continues_messages_in_order_then_ends(fake, start_bot, tmp_path):
    bot = await start_bot(message_content=True, story_turns=3)
    interaction = await fake.slash("generate", {"prompt": "The ship left port", "thread": True})
    output = await finished(fake, interaction)
    thread_id = await fake.wait_for(lambda: next(iter(fake.threads), None), what="the thread")
    assert thread_id == output.id
    opening = await fake.wait_for(
        lambda: next((m for m in fake.messages.values() if m.channel_id == thread_id), None)
    )
    assert "story thread" in opening.content and "3 turns" in opening.content

    first = await fake.say("A storm rose.", channel_id=thread_id)
    second = await fake.say("The crew sang.", member=fake.bob, channel_id=thread_id)
    await answer_to(fake, first)
    await answer_to(fake, second)
    start, one, two = bot.generations()
    assert (one.parent_id, two.parent_id) == (start.id, one.id)  # in the order written
    assert one.channel_id == two.channel_id == str(thread_id)
    assert two.prompt == one.prompt + one.output + "\nThe crew sang."

    third = await fake.say("Land ahoy!", channel_id=thread_id)
    await answer_to(fake, third)
    ended = await fake.wait_for(
        lambda: next((m for m in fake.messages.values() if "ends here" in m.content), None)
    )
    assert ended.channel_id == thread_id
    # the bot says why, then locks the thread: the lock may land just after the sentence
    metadata = fake.threads[thread_id]["thread_metadata"]
    await fake.wait_for(lambda: metadata["locked"] and metadata["archived"], what="the lock")
    assert len(bot.generations()) == 4


async def test_a_withheld_turn_is_passed_over_and_the_story_goes_on(fake, start_bot):
    def text(request: GenerationRequest, sample: int) -> str:
        return " The kraken rose." if request.prompt.endswith("Dive!") else " Calm seas."

    bot = await start_bot(ScriptedBackend(text), message_content=True)
    servers = ServerSettingsRepository(bot.app.db)
    await bot.app.db.run(
        servers.update, "discord", str(fake.guild_id), "owner", blocklist=("kraken",)
    )
    await finished(fake, await fake.slash("generate", {"prompt": "The ship", "thread": True}))
    thread_id = await fake.wait_for(lambda: next(iter(fake.threads), None), what="the thread")

    await fake.say("Dive!", channel_id=thread_id)
    await fake.wait_for(lambda: len(bot.generations()) == 2, what="the withheld turn")
    after = await fake.say("Sail home.", member=fake.bob, channel_id=thread_id)
    await answer_to(fake, after)
    start, withheld, turn = bot.generations()
    assert withheld.withheld and not turn.withheld
    assert turn.parent_id == start.id  # from the last text the members saw
    assert turn.prompt == start.prompt + start.output + "\nSail home."


async def test_a_story_turn_during_the_cooldown_is_refused(fake, start_bot):
    bot = await start_bot(message_content=True, cooldown_s=60.0)
    output = await finished(fake, await fake.slash("generate", {"prompt": "Dawn", "thread": True}))
    thread_id = await fake.wait_for(lambda: next(iter(fake.threads), None), what="the thread")
    assert thread_id == output.id

    too_soon = await fake.say("Birds sang.", channel_id=thread_id)  # alice just generated
    note = await note_to(fake, too_soon, "Slow down")
    assert f"<@{fake.alice.id}>" in note.content
    on_time = await fake.say("Birds sang.", member=fake.bob, channel_id=thread_id)
    await answer_to(fake, on_time)
    assert len(bot.generations()) == 2


async def test_without_the_content_intent_story_turns_need_a_mention(fake, start_bot):
    bot = await start_bot()
    await finished(fake, await fake.slash("generate", {"prompt": "Night", "thread": True}))
    thread_id = await fake.wait_for(lambda: next(iter(fake.threads), None), what="the thread")
    opening = await fake.wait_for(
        lambda: next((m for m in fake.messages.values() if m.channel_id == thread_id), None)
    )
    assert "mention me" in opening.content

    unread = await fake.say("Stars came out.", channel_id=thread_id)
    said = await fake.say("Stars came out.", channel_id=thread_id, mention=True)
    await answer_to(fake, said)
    assert fake.replies_to(unread.id) == []
    assert bot.generations()[-1].prompt.endswith("\nStars came out.")


async def test_a_direct_message_needs_no_mention_where_the_policy_allows(fake, start_bot):
    bot = await start_bot(dm_policy="allow")
    said = await fake.say("Tell me a story", in_guild=False, channel_id=fake.next_id())
    await answer_to(fake, said)
    [generation] = bot.generations()
    assert (generation.prompt, generation.guild_id) == ("Tell me a story", None)


async def test_direct_messages_follow_the_dm_policy(fake, start_bot):
    bot = await start_bot(dm_policy="deny")
    said = await fake.say("Tell me a story", in_guild=False, channel_id=fake.next_id())
    await note_to(fake, said, "direct messages is turned off")
    refused = await fake.slash("generate", {"prompt": "x", "thread": True}, in_guild=False)
    assert "direct messages" in (await ephemeral_reply(fake, refused)).content
    assert bot.generations() == []


async def test_a_member_who_deletes_their_data_leaves_later_story_prompts(fake, start_bot):
    bot = await start_bot(real_admin=True, message_content=True)
    await finished(fake, await fake.slash("generate", {"prompt": "Tale", "thread": True}, fake.bob))
    thread_id = await fake.wait_for(lambda: next(iter(fake.threads), None), what="the thread")
    secret = "Alice's secret turn."
    await answer_to(fake, await fake.say(secret, channel_id=thread_id))
    await answer_to(fake, await fake.say("Bob goes on.", member=fake.bob, channel_id=thread_id))
    assert secret in bot.generations()[-1].prompt

    await reply_text(fake, await fake.slash("mydata delete", {"confirm": True}))
    for generation in GenerationRepository(bot.app.db).iter_all():
        assert secret not in generation.prompt + generation.output
    assert bot.generations()[-1].output  # bob's own output stays
