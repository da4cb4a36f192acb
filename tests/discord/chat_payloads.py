"""Discord's wire format for members' messages and threads (test support for the fake).

Shapes as discord.py 2.7 parses them (`Message.__init__`, `Thread._from_data`); a message's
text is withheld unless the bot may read it, as Discord does without the privileged
message-content intent: kept when it mentions the bot, in a direct message, or when the bot
identified with the intent.
"""

from __future__ import annotations

from typing import Any

from tests.discord import payloads as p

MESSAGE_CONTENT_INTENT = 1 << 15
PUBLIC_THREAD = 11


def member_message(
    message_id: int,
    channel_id: int,
    guild_id: int | None,
    author: p.Member,
    content: str,
    mentions: list[p.Member],
    reference: tuple[int, int] | None = None,  # (channel id, message id) replied to
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "author": p.user(author.id, author.name, author.bot),
        "content": content,
        "timestamp": p.now_iso(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [p.user(m.id, m.name, m.bot) for m in mentions],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 19 if reference else 0,
        "flags": 0,
        "components": [],
    }
    if guild_id is not None:
        member = author.payload()
        del member["user"]
        data.update(guild_id=str(guild_id), member=member)
    if reference is not None:
        channel, message = reference
        data["message_reference"] = {
            "type": 0,
            "message_id": str(message),
            "channel_id": str(channel),
            **({"guild_id": str(guild_id)} if guild_id is not None else {}),
        }
    return data


def thread_channel(
    thread_id: int,
    guild_id: int,
    parent_id: int,
    owner_id: int,
    name: str,
    archive_after: int,
    archived: bool = False,
    locked: bool = False,
) -> dict[str, Any]:
    return {
        "id": str(thread_id),
        "type": PUBLIC_THREAD,
        "guild_id": str(guild_id),
        "parent_id": str(parent_id),
        "owner_id": str(owner_id),
        "name": name,
        "last_message_id": None,
        "message_count": 0,
        "member_count": 1,
        "rate_limit_per_user": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": archived,
            "auto_archive_duration": archive_after,
            "archive_timestamp": p.now_iso(),
            "locked": locked,
        },
    }


def readable(content: str, intents: int, mentions_bot: bool, in_guild: bool) -> str:
    """What Discord delivers of a message's text to the bot."""
    if intents & MESSAGE_CONTENT_INTENT or mentions_bot or not in_guild:
        return content
    return ""
