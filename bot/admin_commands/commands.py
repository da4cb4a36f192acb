"""`AdminCommands`: one typed admin command in, authorized and audited, run, answered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol

from admin.auth import Actor, AdminGate, NotAuthorized
from admin.base import AdminServices
from bot.admin_commands import ab, learning, lines, servers
from bot.admin_commands.context import Command, Context, Progress, Tell, Unpublish
from bot.admin_commands.render import Renderer, incident_sentence
from bot.admin_commands.surface import AdminReply, Surface

log = logging.getLogger(__name__)

COMMANDS: tuple[Command, ...] = learning.COMMANDS + servers.COMMANDS + ab.COMMANDS + lines.COMMANDS
BY_WORDS = {" ".join(command.words): command for command in COMMANDS}
# the help text's lines, by the commands' first words (stats sits with the server's views)
HELP_LINES = (
    ("curate add", "curate list", "curate remove", "curate queue"),
    ("retrain now", "retrain status", "retrain cancel", "retrain schedule"),
    ("model list", "model use", "model rollback"),
    ("stats", "server show", "server channels", "server cooldown"),
    ("server caps", "server defaults", "server training", "server blocklist"),
    ("server template", "server roles"),
    ("server reports", "server keep", "server delete"),
    ("review next", "review vote", "review stats"),
    ("ab start", "ab status", "ab stop"),
    ("line show", "line enable", "line disable", "line share"),
    ("line add", "line queue", "line retrain", "line use", "line rollback"),
    ("line schedule", "line ab", "line review"),
)


class AdminHost(Protocol):
    """What the command set needs of the app: the services and the gate in front of them."""

    admin: AdminServices
    gate: AdminGate


class AdminCommands:
    """Runs the admin command set for one platform, worded by its `renderer` (by default the
    text every typed platform shows, in `surface`'s markup)."""

    def __init__(
        self, app: AdminHost, surface: Surface | None = None, renderer: Renderer | None = None
    ) -> None:
        self._app = app
        self.renderer = renderer or Renderer(surface)
        self.surface = self.renderer.surface
        self._tasks: set[asyncio.Task[None]] = set()

    def usage(self) -> str:
        """The help text: every command, a line per group."""
        lines = []
        for group in HELP_LINES:
            first, *others = (BY_WORDS[words].usage for words in group)
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
        context = self._context(actor, args=words[size:], rest=rest[0] if rest else "", tell=tell)
        return await self._answer(command, context, parse=True)

    async def call(
        self,
        actor: Actor,
        words: str,
        options: Mapping[str, Any] | None = None,
        *,
        detail: Mapping[str, Any] | None = None,
        tell: Tell | None = None,
        progress: Progress | None = None,
        unpublish: Unpublish | None = None,
    ) -> AdminReply:
        """Run the command named by `words` ("model use") with `options` already typed (a
        platform whose commands take typed options, e.g. Discord's slash commands): authorized
        and audited with `detail` (default: the options), then run; never raises for what a
        use-case refused. `progress` shows a training run as it goes; `unpublish` deletes
        the message of an output `server delete` removed."""
        command = BY_WORDS[words]  # a platform names only the commands it registered
        options = dict(options or {})
        try:
            audited = f"{self.surface.audit_prefix}{words}"
            await self._app.gate.authorize(actor, audited, dict(detail or options))
        except NotAuthorized as refusal:
            log.warning("refused admin %s for user %s", words, actor.user_id)
            return AdminReply(str(refusal))
        hooks = {"tell": tell, "progress": progress, "unpublish": unpublish}
        context = self._context(actor, options=options, **hooks)
        return await self._answer(command, context, parse=False)

    def _context(self, actor: Actor, **given: Any) -> Context:
        return Context(self._app.admin, actor, self.renderer, self._spawn, **given)

    async def _answer(self, command: Command, context: Context, parse: bool) -> AdminReply:
        try:
            if parse:
                context.options = command.parse(context)
            reply = await command.handler(context)
        except Exception as error:  # a refusal, a mistake or an incident: the renderer words it
            return AdminReply(self.renderer.error(error, " ".join(command.words)))
        return AdminReply(reply) if isinstance(reply, str) else reply

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("could not report a training run", exc_info=task.exception())


def _lookup(words: list[str]) -> Command | None:
    for size in (2, 1):
        command = BY_WORDS.get(" ".join(words[:size])) if len(words) >= size else None
        if command is not None:
            return command
    return None


__all__ = ["COMMANDS", "AdminCommands", "AdminHost", "incident_sentence"]
