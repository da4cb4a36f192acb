"""Text in and out of Slack: parsing `/generate` options, escaping for mrkdwn.

Slack sends slash-command text with `&`, `<` and `>` escaped as HTML entities and expects
the same escaping in messages we post (https://api.slack.com/reference/surfaces/formatting).
"""

from __future__ import annotations

import re

from slack_sdk.errors import SlackApiError

from bot.params import LIMITS, InvalidRequest

OPTION = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)=(\S*)$")
OPTIONS_END = "--"  # ends the options, so a prompt may itself start with `word=value`
SKIN_TONE = re.compile(r"::skin-tone-\d$")

GENERATE_USAGE = (
    "Usage: `/generate [option=value ...] prompt`, e.g. "
    "`/generate temperature=0.9 top_k=40 Once upon a time`.\n"
    "Options: "
    + ", ".join(f"`{name}` ({help_text})" for name, (_, _, _, _, help_text) in LIMITS.items())
    + f".\nEnd the options with `{OPTIONS_END}` if the prompt itself starts with `word=value`."
)


def unescape(text: str) -> str:
    """Slack's escaped text back to what the user typed."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def escape(text: str) -> str:
    """Plain text made safe for a Slack message (no accidental links or mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def parse_generate(text: str) -> tuple[dict[str, str], str]:
    """`"temperature=0.9 top_k=40 Once upon"` -> `({"temperature": "0.9", ...}, "Once upon")`.

    Options come first; the first word that is not `name=value` starts the prompt. Values are
    validated later by `bot.params`; here only the names and the shape are checked.
    """
    rest = unescape(text).strip()
    options: dict[str, str] = {}
    while rest:
        word, _, remainder = rest.partition(" ")
        if word == OPTIONS_END:
            rest = remainder.strip()
            break
        match = OPTION.match(word)
        if match is None:
            break
        name, value = match.group(1).lower().replace("-", "_"), match.group(2)
        if name not in LIMITS:
            raise InvalidRequest(
                f"Unknown option `{name}`: use {', '.join(LIMITS)}. "
                f"If `{word}` is part of your prompt, put `{OPTIONS_END}` before it."
            )
        if not value:
            raise InvalidRequest(f"`{name}=` needs a value, e.g. `{name}={_example(name)}`.")
        if name in options:
            raise InvalidRequest(f"`{name}` is given twice: keep one.")
        options[name] = value
        rest = remainder.strip()
    return options, rest


def _example(name: str) -> str:
    kind, low, high, _, _ = LIMITS[name]
    middle = (low + min(high, 1000)) / 2
    return str(int(middle)) if kind is int else f"{middle:g}"


def reaction_name(reaction: str) -> str:
    """`"+1::skin-tone-3"` -> `"+1"`: a skin tone does not change what a reaction means."""
    return SKIN_TONE.sub("", reaction)


def slack_error(error: SlackApiError) -> str:
    """Slack's error code (`not_in_channel`, `ratelimited`...) or the HTTP status."""
    data = error.response.data
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return f"HTTP {error.response.status_code}"
