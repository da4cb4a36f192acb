"""The nolinks moderator as members meet it: through gpt2bot's /generate use-case."""

from __future__ import annotations

import pytest
from nolinks_moderator import create

from bot import plugin_api as gpt2bot

MEMBER = gpt2bot.Origin("test", "bob")


@pytest.mark.parametrize(
    "prompt", ["Visit https://spam.example now", "see www.cheap-pills for more", "buy at pills.xyz"]
)
async def test_a_prompt_with_a_link_is_refused_with_the_reason(tmp_path, prompt) -> None:
    backend = gpt2bot.ScriptedBackend()
    async with gpt2bot.app_for_tests(
        tmp_path, backend=backend, moderator=create(gpt2bot.ModerationConfig())
    ) as app:
        with pytest.raises(gpt2bot.InvalidRequest, match="contains a link"):
            await app.chat.generate(MEMBER, prompt)
    assert backend.requests == []  # nothing was generated


async def test_an_output_with_a_link_is_withheld(tmp_path) -> None:
    backend = gpt2bot.ScriptedBackend(text=lambda request, sample: " go to http://x.example/win")
    async with gpt2bot.app_for_tests(
        tmp_path, backend=backend, moderator=create(gpt2bot.ModerationConfig())
    ) as app:
        finished = await app.chat.generate(MEMBER, "Tell me a story")
    assert "http://" not in finished.generations[0].output


async def test_plain_text_and_a_servers_terms() -> None:
    moderator = create(gpt2bot.ModerationConfig())
    assert not (await moderator.check("The cat sat on the mat.")).flagged
    verdict = await moderator.check("The cat sat on the MAT.", extra_terms=("mat",))
    assert verdict.flagged and verdict.reason == "contains a term this server blocks"
