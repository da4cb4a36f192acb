"""Who may use admin commands, and the audit log of every attempt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from storage import AuditRepository, Database


@dataclass(frozen=True)
class Actor:
    """The person behind an admin command, as their platform describes them."""

    platform: str
    user_id: str
    roles: tuple[str, ...] = ()  # role names (Discord)
    platform_admin: bool = False  # e.g. Discord's Administrator permission, a web admin token


class NotAuthorized(PermissionError):
    """Raised for non-admins; the message is the polite refusal to show them."""

    def __init__(self) -> None:
        super().__init__("Sorry, only gpt2bot admins can do that. Nothing was changed.")


@dataclass(frozen=True)
class AdminPolicy:
    user_ids: tuple[str, ...] = ()
    role: str | None = None

    def allows(self, actor: Actor) -> bool:
        return (
            actor.platform_admin
            or actor.user_id in self.user_ids
            or (self.role is not None and self.role in actor.roles)
        )


@dataclass
class AdminGate:
    """Checks an actor and audits the attempt, allowed or refused, before anything happens."""

    policy: AdminPolicy
    db: Database
    audit: AuditRepository = field(init=False)

    def __post_init__(self) -> None:
        self.audit = AuditRepository(self.db)

    async def authorize(
        self, actor: Actor, action: str, detail: dict[str, Any] | None = None
    ) -> None:
        allowed = self.policy.allows(actor)
        await self.db.run(
            self.audit.record, actor.user_id, actor.platform, action, allowed, detail or {}
        )
        if not allowed:
            raise NotAuthorized()
