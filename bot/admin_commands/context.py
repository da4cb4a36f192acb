"""What every admin command works with: the `Context` of one command (who asked, its options
by name, the platform's `Renderer`), the `Command` table's rows, and an `Upload`."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from admin.auth import Actor
from admin.base import AdminServices
from bot.admin_commands.render import Renderer
from bot.admin_commands.surface import AdminReply, Surface
from bot.params import InvalidRequest
from storage import TrainingRunRecord

Tell = Callable[[str], Coroutine[Any, Any, None]]  # a later message to the admin who asked
Progress = Callable[[TrainingRunRecord], None]  # a platform's own display of a training run
Unpublish = Callable[[str, str], Awaitable[None]]  # delete a posted message (channel, message)


@dataclass(frozen=True)
class Upload:
    """A file an admin attached (Discord's attachment option): its name, size, and bytes."""

    filename: str
    size: int
    read: Callable[[], Awaitable[bytes]]


@dataclass
class Context:
    """One admin command: who asked, its options by name, how to word and send the answer.

    A typed command line fills `args` and `rest`, and the command's `parse` reads them into
    `options`; a platform with typed options (Discord's slash commands) gives `options` at once.
    """

    services: AdminServices
    actor: Actor
    render: Renderer  # how the platform words each result
    spawn: Callable[[Coroutine[Any, Any, None]], None]
    options: dict[str, Any] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)  # the words after the command's words
    rest: str = ""  # the text after the command words, line breaks kept
    tell: Tell | None = None  # a later message to the admin who asked
    progress: Progress | None = None  # shows a training run as it goes (else: `tell` at the end)
    unpublish: Unpublish | None = None  # deletes an output's message (`server delete`)

    @property
    def surface(self) -> Surface:
        """How the platform writes code, bold and user text."""
        return self.render.surface

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
Parser = Callable[[Context], dict[str, Any]]


def no_options(ctx: Context) -> dict[str, Any]:
    """The parser of a command that takes no arguments (extra words are ignored)."""
    return {}


@dataclass(frozen=True)
class Command:
    """One admin command: its words, its arguments as help shows them, how a typed line
    becomes its options (`parse` raises `InvalidRequest` with the usage), and what it does."""

    words: tuple[str, ...]
    usage: str  # e.g. "curate list [N]"
    handler: Handler = field(repr=False)
    parse: Parser = field(default=no_options, repr=False)
