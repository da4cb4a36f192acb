"""`AdminCommands`: one typed admin command in, authorized and audited, run, answered."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from typing import Any, Protocol

from admin.auth import Actor, AdminGate, NotAuthorized
from admin.base import AdminServices
from admin.errors import AdminError
from bot.admin_commands import ab, learning, servers
from bot.admin_commands.context import AdminReply, Command, Context, Surface, Tell
from bot.params import InvalidRequest

log = logging.getLogger(__name__)

COMMANDS: tuple[Command, ...] = learning.COMMANDS + servers.COMMANDS + ab.COMMANDS
# the help text's lines, by the commands' first words (stats sits with the server's views)
HELP_LINES = (
    ("curate add", "curate list", "curate remove"),
    ("retrain now", "retrain status", "retrain cancel", "retrain schedule"),
    ("model list", "model use", "model rollback"),
    ("stats", "server show", "server channels", "server cooldown"),
    ("server caps", "server training", "server template"),
    ("review next", "review vote", "review stats"),
    ("ab start", "ab status", "ab stop"),
)


class AdminHost(Protocol):
    """What the command set needs of the app: the services and the gate in front of them."""

    admin: AdminServices
    gate: AdminGate


class AdminCommands:
    """Runs the admin command set for one platform, written as its `surface` says."""

    def __init__(self, app: AdminHost, surface: Surface | None = None) -> None:
        self._app = app
        self.surface = surface or Surface()
        self._tasks: set[asyncio.Task[None]] = set()

    def usage(self) -> str:
        """The help text: every command, a line per group."""
        by_words = {" ".join(c.words): c.usage for c in COMMANDS}
        lines = []
        for group in HELP_LINES:
            first, *others = (by_words[words] for words in group)
            spans = [self.surface.example(first), *(self.surface.code(u) for u in others)]
            lines.append(" · ".join(spans))
        return "Admin commands:\n" + "\n".join(lines)

    async def run(self, actor: Actor, text: str, tell: Tell | None = None) -> AdminReply:
        """Authorize and audit `text` for `actor`, then run it; never raises for what a user
        typed or a use-case refused. `tell` reports later news (a training run that ended)."""
        words = text.split()
        action = " ".join(words[:2]) if words else "help"
        try:
            audited = f"{self.surface.audit_prefix}{action}"
            await self._app.gate.authorize(actor, audited, {"text": text})
        except NotAuthorized as refusal:
            return AdminReply(str(refusal))
        command = _lookup(words)
        if command is None:
            if action == "help":
                return AdminReply(self.usage())
            unknown = self.surface.code(self.surface.escape(action))
            return AdminReply(f"I don't know {unknown}.\n{self.usage()}")
        size = len(command.words)
        rest = text.strip().split(maxsplit=size)[size:]
        context = Context(
            self._app.admin,
            actor,
            self.surface,
            words[size:],
            rest[0] if rest else "",
            tell,
            self._spawn,
        )
        return await self._answer(command, context)

    async def _answer(self, command: Command, context: Context) -> AdminReply:
        try:
            reply = await command.handler(context)
        except AdminError as error:  # a refusal written for the admin who asked
            return AdminReply(error.sentence(self.surface.force))
        except InvalidRequest as error:  # the command's own words could not be read
            return AdminReply(str(error))
        except Exception as error:
            return AdminReply(incident_sentence(error))
        return AdminReply(reply) if isinstance(reply, str) else reply

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)


def incident_sentence(error: BaseException) -> str:
    """Log an unexpected error with an id and return the sentence users see instead."""
    incident = uuid.uuid4().hex[:8]
    log.error("admin command failed (incident %s)", incident, exc_info=error)
    return f"Something went wrong on our side (incident {incident}). Please try again later."


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("could not report a training run", exc_info=task.exception())


def _lookup(words: list[str]) -> Command | None:
    for size in (2, 1):
        for command in COMMANDS:
            if len(words) >= size and command.words == tuple(words[:size]):
                return command
    return None
