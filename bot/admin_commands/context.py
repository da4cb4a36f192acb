"""What every admin command works with: the platform's `Surface` (how it writes), the
`Context` of one command, and the `AdminReply` it answers with."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from admin.auth import Actor
from admin.base import AdminServices
from bot.params import InvalidRequest

Tell = Callable[[str], Coroutine[Any, Any, None]]  # a later message to the admin who asked


def _plain(text: str) -> str:
    return text


def _backticks(text: str) -> str:
    return f"`{text}`"


def _stars(text: str) -> str:
    return f"**{text}**"


def _words(text: str) -> list[str]:
    return [word.lstrip("#") for word in text.split()]


@dataclass(frozen=True)
class Surface:
    """How a platform writes what the command set says (the defaults are Markdown)."""

    command: str = "/admin"  # what admins type before the command words
    server_noun: str = "server"  # what the platform calls a server ("workspace" on Slack)
    code: Callable[[str], str] = _backticks  # a code span in the platform's markup
    bold: Callable[[str], str] = _stars
    escape: Callable[[str], str] = _plain  # user text made safe for the platform's markup
    thumbs_up: str = "👍"  # how the platform writes the 👍 reaction in text
    channel_ids: Callable[[str], list[str]] = _words  # channel ids in `server channels ...`
    audit_prefix: str = ""  # before the words in the audit log's action ("slack " on Slack)

    @property
    def force(self) -> str:
        """Said after a refusal an admin may override (the promotion gate)."""
        how = self.code(f"{self.command} model use VERSION force")
        return f"To promote it anyway, add {self.code('force')}: {how}."

    def example(self, words: str) -> str:
        """A whole command as the admin would type it, as code."""
        return self.code(f"{self.command} {words}")


@dataclass(frozen=True)
class Chart:
    """A PNG image to post with the reply."""

    filename: str
    title: str
    png: bytes


@dataclass(frozen=True)
class AdminReply:
    """What an admin command answers: text for the admin who asked, and charts to post."""

    text: str
    charts: tuple[Chart, ...] = ()


@dataclass
class Context:
    """One admin command: who asked, its words after the command name, how to answer later."""

    services: AdminServices
    actor: Actor
    surface: Surface
    args: list[str]
    rest: str  # the text after the command words, line breaks kept
    tell: Tell | None
    spawn: Callable[[Coroutine[Any, Any, None]], None]

    @property
    def server_id(self) -> str:
        """The server asked in (server commands need one)."""
        if self.actor.server_id is None:
            raise InvalidRequest(f"Use this in a {self.surface.server_noun} channel.")
        return self.actor.server_id

    def number(self, name: str, default: int | None = None, args: list[str] | None = None) -> int:
        """The one argument as a whole number (`#12` too), or `default` when none is given."""
        args = self.args if args is None else args
        if not args and default is not None:
            return default
        if len(args) != 1 or not re.fullmatch(r"#?\d+", args[0]):
            raise InvalidRequest(f"{name} must be a number, e.g. {self.surface.code('12')}.")
        return int(args[0].lstrip("#"))


Handler = Callable[[Context], Awaitable["AdminReply | str"]]


@dataclass(frozen=True)
class Command:
    """One admin command: its words, its arguments as help shows them, and what it does."""

    words: tuple[str, ...]
    usage: str  # e.g. "curate list [N]"
    handler: Handler = field(repr=False)
