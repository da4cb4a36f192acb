"""/admin review: the blind side-by-side review in Discord, driven through real discord.py
offline. Buttons are component interactions (type 3) pressed on the bot's ephemeral answer."""

from __future__ import annotations

from admin.auth import OWNERS_ONLY
from model.backends.base import GenerationRequest
from model.backends.fake import ScriptedBackend
from storage import ModelVersionRepository, ReviewRepository
from tests.discord.test_admin import answer, audit, owners

WORDS = {"v1": "The cat sat on the mat.", "v2": "A dog ran across the park."}


def by_version(request: GenerationRequest, sample: int) -> str:
    return f" {WORDS[request.version or 'v1']}"


def register(bot, *names: str) -> None:
    versions = ModelVersionRepository(bot.app.db)
    for name in names:
        versions.add(name, f"/models/{name}", "bootstrap")
    versions.activate("v1")


async def test_owner_judges_a_blind_pair_with_buttons_and_sees_the_win_rate(fake, start_bot):
    backend = ScriptedBackend(text=by_version, model_version="v1")
    bot = await start_bot(backend, real_admin=True, admin=owners(fake.boss))
    register(bot, "v1", "v2")

    shown = await answer(fake, await fake.slash("admin review next", member=fake.boss), "Blind")
    assert "v1" not in shown.content and "v2" not in shown.content  # names hidden
    assert WORDS["v1"] in shown.content and WORDS["v2"] in shown.content
    assert shown.buttons == {
        "gpt2bot:review:1:a": "A is better",
        "gpt2bot:review:1:tie": "Tie",
        "gpt2bot:review:1:b": "B is better",
    }
    a_version = (
        "v1" if shown.content.index(WORDS["v1"]) < shown.content.index(WORDS["v2"]) else "v2"
    )

    # a member who is no owner cannot vote, whatever button they get hold of
    refused = await fake.press(shown.id, "gpt2bot:review:1:b", fake.alice)
    await fake.wait_for(lambda: refused.followup_ids, what="the refusal")
    assert fake.messages[refused.followup_ids[0]].content == OWNERS_ONLY
    assert ReviewRepository(bot.app.db).get(1).verdict is None

    await fake.press(shown.id, "gpt2bot:review:1:a", fake.boss)
    revealed = await fake.wait_for(lambda: "preferred" in shown.content and shown, what="reveal")
    other = "v2" if a_version == "v1" else "v1"
    assert f"A was `{a_version}`, B was `{other}`: you preferred `{a_version}`." in revealed.content
    assert revealed.buttons == {"gpt2bot:review:1:next": "Next pair"}

    following = await fake.press(shown.id, "gpt2bot:review:1:next", fake.boss)
    second = await answer(fake, following, "Blind review #2")
    assert set(second.buttons) == {f"gpt2bot:review:2:{c}" for c in ("a", "tie", "b")}
    await fake.press(second.id, "gpt2bot:review:2:tie", fake.boss)
    await fake.wait_for(lambda: "tie" in second.content and "called it" in second.content)

    stats = await answer(fake, await fake.slash("admin review stats", member=fake.boss), "judged")
    first_wins = 1 if a_version == "v1" else 0
    assert f"`v1` vs `v2`: 2 judged · `v1` {first_wins} won" in stats.content
    assert "1 tied" in stats.content
    actions = [(action, ok) for _, action, ok in audit(bot) if action.startswith("review")]
    assert actions == [
        ("review next", True),
        ("review vote", False),
        ("review vote", True),
        ("review next", True),
        ("review vote", True),
        ("review stats", True),
    ]


async def test_review_with_one_version_says_what_to_do(fake, start_bot):
    bot = await start_bot(
        ScriptedBackend(model_version="v1"), real_admin=True, admin=owners(fake.boss)
    )
    register(bot, "v1")
    reply = await answer(fake, await fake.slash("admin review next", member=fake.boss), "⚠️")
    assert "Train or register a second version first" in reply.content and not reply.buttons
    refused = await answer(fake, await fake.slash("admin review next", member=fake.alice))
    assert refused.content == OWNERS_ONLY
