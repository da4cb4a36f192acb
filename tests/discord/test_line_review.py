"""/admin line review: a server line's own blind review in Discord, through real discord.py
offline: its admins judge a pair of the line's versions with buttons that record through
`line review` (not the owners' `review vote`), and its win rates are the line's pairs only."""

from __future__ import annotations

from admin.auth import NO_LINE
from model.backends.base import GenerationRequest
from model.backends.fake import ScriptedBackend
from storage import ModelVersionRepository, ServerSettingsRepository
from tests.discord import payloads as p
from tests.discord.test_admin import answer, audit, owners

WORDS = {
    "v1": "The shared model speaks.",
    "a-1": "The keeper lit the lamp.",
    "a-2": "Ships passed.",
}


def by_version(request: GenerationRequest, sample: int) -> str:
    return f" {WORDS[request.version or 'v1']}"


async def test_a_lines_admin_judges_its_own_pair_with_buttons(fake, start_bot):
    backend = ScriptedBackend(text=by_version, model_version="v1")
    bot = await start_bot(backend, real_admin=True, admin=owners(fake.boss))
    key = f"discord:{fake.guild_id}"
    versions = ModelVersionRepository(bot.app.db)
    versions.add("v1", "/models/v1", "bootstrap")
    versions.activate("v1")
    for name in ("a-1", "a-2"):
        versions.add(name, f"/models/{name}", "bootstrap", base_version="v1", line=key)
    versions.activate("a-1")
    moderator = p.Member(fake.next_id(), "moderator", permissions=p.MANAGE_GUILD)

    early = await fake.slash("admin line review", member=moderator)
    assert (await answer(fake, early)).content == NO_LINE
    ServerSettingsRepository(bot.app.db).update(
        "discord", str(fake.guild_id), "boss", own_line=True
    )

    shown = await answer(fake, await fake.slash("admin line review", member=moderator), "Blind")
    assert WORDS["a-1"] in shown.content and WORDS["a-2"] in shown.content
    assert WORDS["v1"] not in shown.content  # the line's versions only
    assert set(shown.buttons) == {f"gpt2bot:line-review:1:{c}" for c in ("a", "tie", "b")}

    await fake.press(shown.id, "gpt2bot:line-review:1:tie", moderator)  # the line's admin
    revealed = await fake.wait_for(lambda: "called it" in shown.content and shown, what="reveal")
    assert "`a-1`" in revealed.content and "`a-2`" in revealed.content
    assert revealed.buttons == {"gpt2bot:line-review:1:next": "Next pair"}

    stats = {"action": "stats"}
    shown_stats = await answer(
        fake, await fake.slash("admin line review", stats, moderator), "judged"
    )
    assert "1 tied" in shown_stats.content
    actions = [(action, ok) for _, action, ok in audit(bot) if action.startswith("line review")]
    # refused, then next, the vote (the gate's entry and the line service's), stats
    assert actions == [("line review", False)] + [("line review", True)] * 4
