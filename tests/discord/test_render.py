"""The pure parts: message splitting, previews, command comparison, settings, endpoints."""

from __future__ import annotations

import pytest

from bot.platforms.base import platform_config
from bot.platforms.discord import DiscordConfig, render
from bot.platforms.discord import create as create_discord
from bot.platforms.discord.platform import rest_base
from bot.platforms.discord.sync import same_commands
from bot.settings import Settings, SettingsError


def test_split_text_keeps_everything_and_prefers_spaces():
    text = " ".join(["lorem"] * 900)  # 5,399 characters
    pages = render.split_text(text)
    assert "".join(pages) == text
    assert len(pages) == 3 and all(len(page) <= render.MESSAGE_LIMIT for page in pages)
    assert all(page.endswith(" ") for page in pages[:-1])  # cut after a space, not in a word


def test_split_text_never_separates_an_escape_from_its_character():
    text = "\\*" * 1500  # markdown-escaped asterisks, no spaces to cut at
    pages = render.split_text(text)
    assert "".join(pages) == text
    assert all(not page.endswith("\\") for page in pages)


def test_paginate_puts_the_footer_on_the_last_page():
    body = "x" * 1995
    pages = render.paginate(body, "-# footer")
    assert pages == [body, "-# footer"]
    assert render.paginate("short", "-# footer") == ["short\n-# footer"]


def test_output_is_escaped_and_previews_fit_one_message():
    assert render.output_body("Hi *you*", " __there__") == r"**Hi \*you\*** \_\_there\_\_"
    preview = render.preview("p", {0: "word " * 1000}, "queued: position 3")
    assert len(preview) <= render.MESSAGE_LIMIT and preview.startswith("…")
    assert preview.endswith(render.CURSOR + "\n-# queued: position 3")
    assert render.queued(1) == "waiting for the model…"


def test_command_comparison_ignores_what_discord_adds():
    local = [
        {
            "name": "generate",
            "description": "d",
            "type": 1,
            "nsfw": False,
            "default_member_permissions": 8,
            "dm_permission": True,
            "options": [
                {
                    "name": "t",
                    "type": 10,
                    "min_value": 0.0,
                    "max_value": 2,
                    "required": False,
                    "description": "x",
                }
            ],
        }
    ]
    remote = [
        {
            **local[0],
            "id": "1",
            "version": "2",
            "application_id": "3",
            "default_member_permissions": "8",
            "options": [
                {"name": "t", "type": 10, "min_value": 0, "max_value": 2.0, "description": "x"}
            ],
        }
    ]
    assert same_commands(local, remote)
    changed = [{**remote[0], "description": "new"}]
    assert not same_commands(local, changed)
    assert not same_commands(local, [])


def test_discord_settings_are_validated():
    """Read from the environment the way `gpt2bot run` reads the plugin's settings."""
    token = {"DISCORD_TOKEN": "a-token"}
    config = platform_config(
        create_discord,
        Settings.from_env(
            {
                **token,
                "DISCORD_EDIT_INTERVAL_SECONDS": "1.5",
                "DISCORD_DM_POLICY": "Admins",
            },
            dotenv_path=None,
        ),
    )
    assert isinstance(config, DiscordConfig)
    assert config.edit_interval_s == 1.5
    assert config.dm_policy == "admins"
    bad = [
        ("DISCORD_EDIT_INTERVAL_SECONDS", "0"),
        ("DISCORD_DM_POLICY", "maybe"),
    ]
    for name, value in bad:
        settings = Settings.from_env({**token, name: value}, dotenv_path=None)
        with pytest.raises(SettingsError) as error:
            platform_config(create_discord, settings)
        assert str(error.value).startswith(f"{name}: ")


def test_rest_base_adds_the_api_version_when_missing():
    assert rest_base("http://proxy:8080/") == "http://proxy:8080/api/v10"
    assert rest_base("http://proxy:8080/api/v10") == "http://proxy:8080/api/v10"


def test_busy_note_says_when_to_retry_once():
    assert render.busy("The generator is busy.", 11.2) == (
        "⏳ The generator is busy. Try again in about 12 s."
    )
    said = "The generator is busy. Please retry in 12 s."
    assert render.busy(said, 12) == f"⏳ {said}"


def test_the_footer_names_the_template_and_says_once_that_a_chain_was_cut():
    from datetime import UTC, datetime

    from bot.chat import CONTEXT_NOTICE
    from storage import GenerationRecord

    record = GenerationRecord(
        *(1, 1, None, "reply", "discord", "g", "c", "u", None, "Q: hi\nA: yes", " ok", {}),
        *(7, 0, "v1", 5, 1, 0.1, True, datetime.now(UTC)),
        template="Q: {prompt}\nA:",
    )
    first = render.footer(record, 0, 1, CONTEXT_NOTICE)
    later = render.footer(record, 0, 1)
    assert "template `Q: {prompt}\\nA:`" in first  # one line: the new line shown as \n
    assert CONTEXT_NOTICE in first and CONTEXT_NOTICE not in later
    assert "the prompt was cut" not in later  # a chain says so once, with the notice
