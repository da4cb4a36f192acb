"""Who may do what, and the audit log of every attempt.

Two scopes of authority, the same on every platform:
- **bot owners** (`ADMIN_USER_IDS`; the web dashboard's admin token) control everything,
  including what every server shares: the model (retrain, schedule, use, rollback, A/B
  experiments) and the
  global training data;
- **server admins** (Discord: the Manage Server permission, or a role whose *id* is listed in
  `ADMIN_ROLE` or in the server's own settings; Slack: workspace admins and owners) control
  their own server only: its settings and its members' data, and, where the owners gave their
  server a model line of its own (admin/lines.py), that line's versions (`Scope.LINE`).
Role *names* grant nothing: any member can create a role called "admin" in their own server.
Every attempt is audited with the actor, the scope and the server, allowed or refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from storage import AuditRepository, Database, ServerSettingsRecord, ServerSettingsRepository


class Scope(StrEnum):
    GLOBAL = "global"  # the shared model and training data: bot owners only
    SERVER = "server"  # one server's settings and data: its admins and the owners
    READ = "read"  # views that change nothing: any admin, in their server
    LINE = "line"  # the server's own model line: its admins once the owners enabled it


# actions by their words (platforms' spellings "model.use", "slack model use" normalize to this)
ACTION_SCOPES: dict[str, Scope] = {
    "stats": Scope.READ,
    "model list": Scope.READ,
    "retrain status": Scope.READ,
    "ab status": Scope.READ,  # ab start|stop: unlisted, so owners only
    "help": Scope.READ,
    "server show": Scope.SERVER,
    "server set": Scope.SERVER,
    "server channels": Scope.SERVER,
    "server roles": Scope.SERVER,
    "server cooldown": Scope.SERVER,
    "server caps": Scope.SERVER,
    "server defaults": Scope.SERVER,
    "server training": Scope.SERVER,
    "server blocklist": Scope.SERVER,
    "server template": Scope.SERVER,
    "server delete": Scope.SERVER,
    "server reports": Scope.SERVER,
    "server keep": Scope.SERVER,
    "line show": Scope.READ,
    "line add": Scope.LINE,
    "line queue": Scope.LINE,
    "line retrain": Scope.LINE,
    "line use": Scope.LINE,
    "line rollback": Scope.LINE,  # line enable|disable|share: unlisted, so owners only
    "line schedule": Scope.LINE,
    "line ab": Scope.LINE,  # start, status and stop inside the server's own line
    "line review": Scope.LINE,  # the blind review of the line's own versions
}
PLATFORM_PREFIXES = ("slack ", "web ", "discord ")

OWNERS_ONLY = (
    "Sorry, only the bot's owners (ADMIN_USER_IDS) can do that: it changes what every server "
    "shares. Nothing was changed."
)
NO_LINE = (
    "Sorry, this server has no model line of its own: the bot's owners decide that "
    "(`line enable`). Nothing was changed."
)
ADMINS_ONLY = (
    "Sorry, only this server's admins (Manage Server, or a listed admin role) and the bot's "
    "owners can do that. Nothing was changed."
)


def action_scope(action: str) -> Scope:
    """The scope of an audited action name; anything unknown needs an owner (fail closed)."""
    words = action.replace(".", " ").replace("_", " ").strip().lower()
    for prefix in PLATFORM_PREFIXES:
        words = words.removeprefix(prefix)
    return ACTION_SCOPES.get(" ".join(words.split()), Scope.GLOBAL)


@dataclass(frozen=True)
class Actor:
    """The person behind an admin command, as their platform describes them."""

    platform: str
    user_id: str
    server_id: str | None = None  # the Discord guild / Slack workspace asked in; None in DMs
    server_admin: bool = False  # Discord Manage Server; Slack workspace admin or owner
    role_ids: tuple[str, ...] = ()  # Discord role ids the member holds in that server
    owner: bool = False  # proven otherwise, e.g. the web dashboard's admin token


class NotAuthorized(PermissionError):
    """Raised for a refused attempt; the message is the polite refusal to show."""

    def __init__(self, message: str = ADMINS_ONLY) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class AdminPolicy:
    owner_ids: tuple[str, ...] = ()  # ADMIN_USER_IDS: bot owners
    admin_role_ids: tuple[str, ...] = ()  # ADMIN_ROLE: role ids that make server admins

    def is_owner(self, actor: Actor) -> bool:
        return actor.owner or actor.user_id in self.owner_ids

    def allows(self, actor: Actor, scope: Scope, server_roles: tuple[str, ...] = ()) -> bool:
        """`server_roles`: the admin role ids the actor's server lists in its settings."""
        if self.is_owner(actor):
            return True
        if scope is Scope.GLOBAL or actor.server_id is None:
            return False
        listed = set(self.admin_role_ids) | set(server_roles)
        return actor.server_admin or bool(listed & set(actor.role_ids))


@dataclass
class AdminGate:
    """Checks an actor and audits the attempt, allowed or refused, before anything happens."""

    policy: AdminPolicy
    db: Database
    audit: AuditRepository = field(init=False)
    servers: ServerSettingsRepository = field(init=False)

    def __post_init__(self) -> None:
        self.audit = AuditRepository(self.db)
        self.servers = ServerSettingsRepository(self.db)

    async def authorize(
        self, actor: Actor, action: str, detail: dict[str, Any] | None = None
    ) -> Scope:
        """Allow `action` or raise `NotAuthorized` (with the refusal to show); audited."""
        scope = action_scope(action)
        settings = ServerSettingsRecord(actor.platform, actor.server_id or "")
        if actor.server_id is not None and scope is not Scope.GLOBAL:
            settings = await self.db.run(self.servers.get, actor.platform, actor.server_id)
        roles = settings.admin_role_ids
        permitted = self.policy.allows(actor, scope, roles)
        no_line = scope is Scope.LINE and not self.policy.is_owner(actor) and not settings.own_line
        allowed = permitted and not no_line
        await self.db.run(
            self.audit.record,
            actor.user_id,
            actor.platform,
            action,
            allowed,
            detail or {},
            str(scope),
            actor.server_id,
        )
        if not allowed:
            raise NotAuthorized(
                OWNERS_ONLY if scope is Scope.GLOBAL else ADMINS_ONLY if not permitted else NO_LINE
            )
        return scope
