"""Per-server settings, set by a server's own admins: where `/generate` may be used, how often,
within which caps and defaults, the prompt template around members' text, and whether the
server's ratings may feed training.

Validation lives here, so every platform refuses the same values with the same sentence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from admin.errors import Invalid, Unknown
from admin.moderation import Moderator
from storage import (
    Database,
    MemberDataRepository,
    ReportedRecord,
    ReportRepository,
    ServerSettingsRecord,
    ServerSettingsRepository,
)

log = logging.getLogger(__name__)

MAX_COOLDOWN_S = 3600.0
MAX_CHANNELS = 50
# the sampling parameters a server may set defaults for, and their (low, high) bounds
DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_k": (0, 1000),
    "top_p": (0.0, 1.0),
    "max_new_tokens": (1, 512),
    "repetition_penalty": (1.0, 2.0),
    "samples": (1, 4),
}


def _ids(values: Any, what: str) -> tuple[str, ...]:
    ids = tuple(str(v).strip().lstrip("<#@&").rstrip(">") for v in values if str(v).strip())
    if any(not i.replace("-", "").isalnum() for i in ids) or len(ids) > MAX_CHANNELS:
        raise Invalid(f"Give at most {MAX_CHANNELS} {what}, as ids or mentions.")
    return ids


def _cap(value: Any, name: str) -> int | None:
    if value is None:
        return None
    low, high = DEFAULT_BOUNDS[name]
    if not isinstance(value, int) or not low <= value <= high:
        raise Invalid(f"The {name} cap must be a whole number from {low:g} to {high:g}.")
    return value


def _cooldown(value: Any) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0  # refused below, with the same sentence
    if not 0 <= seconds <= MAX_COOLDOWN_S:
        raise Invalid(f"The cooldown must be from 0 to {MAX_COOLDOWN_S:g} seconds.")
    return seconds


def _defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if name not in DEFAULT_BOUNDS:
            raise Invalid(f"{name} has no server default: use {', '.join(DEFAULT_BOUNDS)}.")
        low, high = DEFAULT_BOUNDS[name]
        if not isinstance(value, int | float) or not low <= value <= high:
            raise Invalid(f"The default {name} must be from {low:g} to {high:g}.")
        checked[name] = value
    return checked


MAX_BLOCKLIST_TERMS = 200  # a server's additions; longer lists belong in MODERATION_BLOCKLIST


def _terms(value: Any) -> tuple[str, ...]:
    terms = tuple(dict.fromkeys(t.strip() for t in value if t.strip()))
    if len(terms) > MAX_BLOCKLIST_TERMS or any(len(t) > 100 for t in terms):
        raise Invalid(f"A server may add up to {MAX_BLOCKLIST_TERMS} terms of 100 characters.")
    for term in terms:
        if term.startswith("re:"):
            try:
                re.compile(term[3:])
            except re.error as error:
                raise Invalid(f"{term!r} is not a valid pattern ({error}).") from None
    return terms


MAX_TEMPLATE_CHARS = 500  # a preamble or a format, not a document: the prompt needs the room
PROMPT_FIELD = "{prompt}"


def _templates(value: Mapping[str, Any]) -> dict[str, str]:
    """Templates by place ("" the whole server, else a channel id); each holds `{prompt}`
    exactly once (where the member's text goes)."""
    checked: dict[str, str] = {}
    for place, text in value.items():
        if text is None or not str(text).strip():
            continue  # cleared
        text = str(text).replace("\\n", "\n")  # "\n" typed in a chat box means a new line
        if text.count(PROMPT_FIELD) != 1:
            raise Invalid(
                f"A template needs {PROMPT_FIELD} exactly once, where the member's text goes, "
                f"e.g. `Q: {PROMPT_FIELD}\\nA:`."
            )
        if len(text) > MAX_TEMPLATE_CHARS:
            raise Invalid(f"A template may be at most {MAX_TEMPLATE_CHARS} characters long.")
        checked[_ids([place], "channels")[0] if place else ""] = text
    return checked


def validate(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The changes, checked and normalized; `Invalid` with a sentence for a bad one."""
    checked: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "allowed_channels":
            checked[name] = _ids(value, "channels")
        elif name == "admin_role_ids":
            checked[name] = _ids(value, "roles")
        elif name == "cooldown_s":
            checked[name] = _cooldown(value)
        elif name in ("max_new_tokens_cap", "samples_cap"):
            checked[name] = _cap(value, name.removesuffix("_cap"))
        elif name == "defaults":
            checked[name] = _defaults(value)
        elif name == "ratings_train":
            checked[name] = bool(value)
        elif name == "blocklist":
            checked[name] = _terms(value)
        elif name == "templates":
            checked[name] = _templates(value)
        else:
            raise Invalid(f"{name} is not a server setting.")
    return checked


class Servers:
    """The `ServerService`: read and change one server's settings."""

    def __init__(self, db: Database, moderator: Moderator | None = None) -> None:
        self.db = db
        self.moderator = moderator  # templates are screened like curated texts
        self.repository = ServerSettingsRepository(db)
        self.members = MemberDataRepository(db)
        self.reports = ReportRepository(db)

    async def get(self, platform: str, server_id: str) -> ServerSettingsRecord:
        return await self.db.run(self.repository.get, platform, server_id)

    async def reported(self, platform: str, server_id: str) -> list[ReportedRecord]:
        """The outputs of this server hidden by members' reports, newest first."""
        return await self.db.run(self.reports.hidden, platform, server_id)

    async def keep_reported(
        self, actor: str, platform: str, server_id: str, generation_id: int
    ) -> None:
        """Let a reported output stand: shown again, its reports cleared."""
        try:
            await self.db.run(self.reports.dismiss, platform, server_id, generation_id)
        except LookupError as error:  # the repository's sentence names the generation
            raise Unknown(str(error)) from None
        log.info(
            "%s kept reported generation %d of %s/%s", actor, generation_id, platform, server_id
        )

    async def delete_generation(
        self, actor: str, platform: str, server_id: str, generation_id: int
    ) -> tuple[str | None, str | None]:
        """Remove a generation made in this server (text, ratings, training samples); returns
        its (channel id, message id) so the platform can delete the message too."""
        try:
            where = await self.db.run(
                self.members.delete_generation, platform, server_id, generation_id
            )
        except LookupError as error:  # the repository's sentence names the generation
            raise Unknown(str(error)) from None
        log.info(
            "%s deleted generation %d of %s server %s", actor, generation_id, platform, server_id
        )
        return where

    async def update(
        self, actor: str, platform: str, server_id: str, **changes: Any
    ) -> ServerSettingsRecord:
        checked = validate(changes)
        await self._screen(checked.get("templates", {}))
        record = await self.db.run(self.repository.update, platform, server_id, actor, **checked)
        log.info("%s changed settings of %s server %s: %s", actor, platform, server_id, checked)
        return record

    async def _screen(self, templates: Mapping[str, str]) -> None:
        """A template is text the model is fed every time: refused when moderation flags it."""
        if self.moderator is None:
            return
        for text in templates.values():
            verdict = await self.moderator.check(text.replace(PROMPT_FIELD, " "))
            if verdict.flagged:
                raise Invalid(f"That template was refused by moderation ({verdict.reason}).")
