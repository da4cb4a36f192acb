"""Text shown on Discord: outputs, the streaming preview, footers and error sentences.

Pure functions, no I/O: the streaming code decides when to show what. User text and model
output are markdown-escaped so they show as written; nobody is pinged because every message
goes out with `AllowedMentions.none()`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from discord.utils import escape_markdown

from storage import GenerationRecord

MESSAGE_LIMIT = 2000  # Discord's limit on a message's content
PREVIEW_CHARS = 1800  # while streaming, the end of the text that stays in one message
SPLIT_WINDOW = 300  # look this far back from a page end for a newline or space to cut at
BOLD_PROMPT_LIMIT = 1500  # longer prompts are shown plain so "**" never spans two messages
CURSOR = " ▌"
REACTIONS = ("👍", "👎", "🔁", "⏩")
HINT = "react 👍/👎 to rate · 🔁 another take · ⏩ continue · reply to go on with your words"
TEMPLATE_SHOWN = 80  # characters of a prompt template a footer shows
# after a refusal an admin may override (the promotion gate): how to, on Discord
HOW_TO_FORCE = "To promote it anyway, run `/admin model use` again with `force:True`."

# (parameter, short label) in the order the footer shows them
FOOTER_PARAMS = (
    ("temperature", "temp"),
    ("top_k", "top-k"),
    ("top_p", "top-p"),
    ("max_new_tokens", "max"),
    ("repetition_penalty", "rep"),
)


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def prompt_block(prompt: str) -> str:
    """The prompt as it opens an output: bold when it fits on the first message."""
    text = escape_markdown(prompt.strip())
    if text in ("", "…"):  # no prompt shown (⏩ replies to the text so far)
        return text
    return f"**{text}**" if len(text) <= BOLD_PROMPT_LIMIT else text


def output_body(prompt: str | None, output: str) -> str:
    """Prompt (when given) followed by the model's continuation."""
    text = escape_markdown(output) if output.strip() else " *(the model ended the text here)*"
    return text if prompt is None else prompt_block(prompt) + text


def footer(record: GenerationRecord, sample: int, samples: int, notice: str | None = None) -> str:
    """One small line: id, model version, parameters, seed (and which sample), the template
    when one applied; `notice`: a sentence about the conversation (said once)."""
    parts = [f"#{record.id}", f"model {record.model_version}"]
    if samples > 1:
        parts.append(f"sample {sample + 1}/{samples}")
    for name, label in FOOTER_PARAMS:
        if name in record.params:
            parts.append(f"{label} {_number(record.params[name])}")
    parts.append(f"seed {record.seed}")
    if record.template is not None:
        # one line, and no backtick to end the code span early
        shown = record.template.replace("\n", "\\n").replace("`", "'")[:TEMPLATE_SHOWN]
        parts.append(f"template `{shown}`")
    line = "-# " + " · ".join(parts)
    if record.prompt_truncated and record.kind in ("new", "regenerate"):
        line += "\n-# the prompt was cut from the start to fit GPT-2's 1024-token context"
    if notice:
        line += f"\n-# {notice}"
    return f"{line}\n-# {HINT}"


def _cut_at(text: str, limit: int) -> int:
    """Where to end a page of at most `limit` characters: a newline, a space, or hard."""
    if len(text) <= limit:
        return len(text)
    for separator in ("\n", " "):
        at = text.rfind(separator, limit - SPLIT_WINDOW, limit)
        if at > 0:
            return at + 1
    cut = limit
    while cut > 1 and text[cut - 1] == "\\":  # never separate an escape from its character
        cut -= 1
    return cut


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Pages of at most `limit` characters whose concatenation is `text`."""
    pages = []
    while len(text) > limit:
        cut = _cut_at(text, limit)
        pages.append(text[:cut])
        text = text[cut:]
    pages.append(text)
    return pages


def paginate(body: str, tail: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """`body` split into messages, with `tail` (the footer) on the last one."""
    pages = split_text(body, limit)
    if len(pages[-1]) + 1 + len(tail) <= limit:
        pages[-1] = f"{pages[-1]}\n{tail}"
    else:
        pages.append(tail)
    return pages


def preview(prompt: str, texts: Mapping[int, str], status: str | None = None) -> str:
    """The working message while an answer streams in; always fits one message."""
    if len(texts) <= 1:
        body = output_body(prompt, texts.get(0, "")) if texts else prompt_block(prompt)
    else:
        parts = [prompt_block(prompt)]
        parts += [f"**Sample {i + 1}:** {escape_markdown(texts[i])}" for i in sorted(texts)]
        body = "\n\n".join(parts)
    body += CURSOR
    if len(body) > PREVIEW_CHARS:
        body = "…" + body[-PREVIEW_CHARS:].lstrip("\\")
    return body if status is None else f"{body}\n-# {status}"


def queued(position: int) -> str:
    return "waiting for the model…" if position <= 1 else f"queued: position {position}"


def busy(message: str, retry_after_s: float) -> str:
    if "retry" in message.lower():  # the backend's sentence already says when
        return f"⏳ {message}"
    seconds = max(1, math.ceil(retry_after_s))
    return f"⏳ {message.rstrip('.')}. Try again in about {seconds} s."


def cooldown(retry_after_s: float) -> str:
    seconds = max(1, math.ceil(retry_after_s))
    return f"⏳ Slow down a little: you can ask again in {seconds} s."


def internal_error(incident: str) -> str:
    return (
        f"⚠️ Something went wrong on our side (incident `{incident}`). Please try again; if it "
        "keeps happening, give this id to the bot's operator."
    )


SHUTTING_DOWN = (
    "⚠️ The bot is restarting, so this generation was stopped. Please try again in a minute."
)
NOT_ACCEPTING = "⚠️ The bot is restarting and is not taking new requests. Try again in a minute."
STOPPED = "⏹️ Stopped, as you asked."
DM_DENIED = "Generating in direct messages is turned off here: use /generate in a server channel."
DM_ADMINS_ONLY = (
    "Only gpt2bot admins can generate in direct messages here: use /generate in a server channel."
)
WRITING = "✍️ writing…"


def story_opening(max_turns: int, idle_minutes: float, needs_mention: bool) -> str:
    """The first message of a story thread: how to take part and when it ends."""
    how = "mention me in your message" if needs_mention else "write your message"
    return (
        f"🧵 A story thread: {how} here and I continue the story from it, one turn at a time. "
        f"It ends after {max_turns} turns or {idle_minutes:g} minutes without one."
    )


STORY_IN_DMS = "Story threads need a server channel: leave out thread:True in direct messages."
STORY_NOT_STARTED = "⚠️ The story thread could not be opened (the bot needs the Create Public "
STORY_NOT_STARTED += "Threads permission here); the output above is yours all the same."
CONTENT_HIDDEN = (
    "I could not read that message: mention me in it (keep @mention on in a reply), then I can."
)
