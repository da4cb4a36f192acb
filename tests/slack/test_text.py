"""Parsing `/generate` text and Slack's escaping."""

from __future__ import annotations

import pytest

from bot.params import InvalidRequest
from bot.platforms.slack.text import escape, parse_generate, reaction_name, unescape


@pytest.mark.parametrize(
    ("text", "options", "prompt"),
    [
        ("Once upon a time", {}, "Once upon a time"),
        (
            "temperature=0.9 top_k=40 Once upon a time",
            {"temperature": "0.9", "top_k": "40"},
            "Once upon a time",
        ),
        ("  max-new-tokens=5   Hello  ", {"max_new_tokens": "5"}, "Hello"),
        ("seed=1 -- x=5 is a formula", {"seed": "1"}, "x=5 is a formula"),
        ("Hello top_k=40", {}, "Hello top_k=40"),  # options only come first
        ("a &lt;b&gt; &amp; c", {}, "a <b> & c"),
        ("temperature=0.5", {"temperature": "0.5"}, ""),
    ],
)
def test_options_then_prompt(text: str, options: dict[str, str], prompt: str) -> None:
    assert parse_generate(text) == (options, prompt)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("temprature=1 hi", "Unknown option `temprature`"),
        ("x=5 is a formula", "put `--` before it"),
        ("top_k= hi", "`top_k=` needs a value, e.g. `top_k=500`"),
        ("seed=1 seed=2 hi", "`seed` is given twice"),
    ],
)
def test_bad_options_are_explained(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(")):
        parse_generate(text)


def test_escape_round_trip() -> None:
    text = "if a < b && c > d: <@U123>"
    assert escape(text) == "if a &lt; b &amp;&amp; c &gt; d: &lt;@U123&gt;"
    assert unescape(escape(text)) == text


def test_skin_tones_do_not_change_the_reaction() -> None:
    assert reaction_name("+1::skin-tone-4") == "+1"
    assert reaction_name("repeat") == "repeat"
