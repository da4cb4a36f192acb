"""The default moderator: our blocklist and the offline classifier, and the plugin seam."""

from __future__ import annotations

from admin.moderation import ModerationConfig
from admin.moderation.default import DefaultModerator
from admin.moderation.terms import Blocklist
from bot import plugins


async def test_the_default_moderator_loads_as_the_default_plugin_and_works_offline() -> None:
    factory = plugins.load(plugins.MODERATOR_GROUP, "default")
    moderator = factory(ModerationConfig(blocklist=("zorblax",)))
    assert not (await moderator.check("The data looks good today.")).flagged
    offensive = await moderator.check("you are a stupid piece of shit")
    assert offensive.flagged and offensive.reason == "reads as offensive"
    assert (await moderator.check("A ZORBLAX appears")).reason == "contains a blocked term"
    assert (await moderator.check("fine words", ["fine words"])).flagged


async def test_the_threshold_is_a_setting() -> None:
    lenient = DefaultModerator(ModerationConfig(threshold=1.0))
    assert not (await lenient.check("this is shit")).flagged


def test_blocklist_terms_match_whole_words_through_spacing_and_case_tricks() -> None:
    blocklist = Blocklist(["kill yourself", "re:z+o+r+b"])
    assert blocklist.verdict("KILL   Yourself").flagged
    assert blocklist.verdict("kill\u200b yourself").flagged
    assert blocklist.verdict("zzzooorb").flagged
    assert not blocklist.verdict("skill yourselves").flagged
