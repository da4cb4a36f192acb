"""What the fake Discord keeps: recorded calls, messages, interactions (test support)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.discord import payloads as p


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    at: float
    files: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class Message:
    id: int
    channel_id: int
    content: str
    flags: int = 0
    interaction_id: int | None = None
    reference_id: int | None = None
    allowed_mentions: list[Any] = field(default_factory=list)  # one entry per write
    edits: list[tuple[float, str]] = field(default_factory=list)
    reactions: dict[str, set[int]] = field(default_factory=dict)
    files: list[tuple[str, bytes]] = field(default_factory=list)
    deleted: bool = False
    components: list[dict[str, Any]] = field(default_factory=list)  # action rows, as sent
    author_id: int | None = None  # a member's message (None: the bot's)

    @property
    def buttons(self) -> dict[str, str]:
        """custom_id -> label of the message's buttons."""
        return {
            b["custom_id"]: b.get("label", "")
            for row in self.components
            for b in row.get("components", [])
            if "custom_id" in b
        }

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & p.EPHEMERAL)


@dataclass
class Interaction:
    id: int
    token: str
    created: float
    callback_type: int | None = None
    callback_at: float | None = None
    late_callbacks: int = 0  # callbacks refused because they came after ACK_DEADLINE_S
    original_id: int | None = None
    message_id: int | None = None  # a component interaction: the message its button is on
    followup_ids: list[int] = field(default_factory=list)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def error(status: int, message: str, code: int = 0) -> web.Response:
    return json_response({"message": message, "code": code}, status)
