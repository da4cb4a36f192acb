"""`/gpt2bot-admin ...`: the admin command set (`bot/admin_commands/`) rendered in Slack.

Every attempt is authorized and audited by `admin.auth.AdminGate` before anything happens:
the Slack user ids in `ADMIN_USER_IDS` are the bot's owners (everything); the workspace's
admins and owners (`users.info`) are server admins of their workspace (`server ...`). Answers
are ephemeral (only the admin sees them), except the stats charts (ratings per version, the
A/B experiment's arms), which are uploaded to the channel.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from admin.auth import Actor
from bot.admin_commands import AdminCommands, AdminReply, Surface, incident_sentence
from bot.platforms.slack.chat import PLATFORM
from bot.platforms.slack.text import escape, slack_error, unescape

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

COMMAND = "/gpt2bot-admin"
CHANNEL_ID = re.compile(r"C[A-Z0-9]{4,}")  # in `<#C0123ABCD|name>` and bare ids alike


def _code(text: str) -> str:
    return f"`{text}`"


def _bold(text: str) -> str:
    return f"*{text}*"


def _channel_ids(text: str) -> list[str]:
    return CHANNEL_ID.findall(text)


SURFACE = Surface(
    command=COMMAND,
    server_noun="workspace",
    code=_code,
    bold=_bold,
    escape=escape,
    thumbs_up=":+1:",
    channel_ids=_channel_ids,
    audit_prefix="slack ",
)


class SlackAdmin:
    """The `/gpt2bot-admin` handler; bolt injects its arguments by name."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._commands = AdminCommands(app, SURFACE)

    async def command(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        """`/gpt2bot-admin <group> <action> [arguments]`: curate, retrain, model, stats."""
        await ack()
        try:
            answer = await self._answer(command, client)
        except Exception as error:  # e.g. the audit log could not be written
            answer = incident_sentence(error)
        await respond(text=answer, response_type="ephemeral")

    async def _answer(self, command: dict[str, Any], client: AsyncWebClient) -> str:
        actor = await self._actor(command, client)
        channel = command["channel_id"]

        async def tell(text: str) -> None:  # usable after the response URL has expired
            await client.chat_postEphemeral(channel=channel, user=actor.user_id, text=text)

        text = unescape(command.get("text", "")).strip()
        reply = await self._commands.run(actor, text, tell)
        return await _post_charts(reply, client, channel)

    async def _actor(self, command: dict[str, Any], client: AsyncWebClient) -> Actor:
        """Who asked, in which workspace, and whether Slack says they administer it."""
        user, team = command["user_id"], command.get("team_id")
        if self._app.gate.policy.is_owner(Actor(PLATFORM, user)):
            return Actor(PLATFORM, user, server_id=team)
        try:
            info = (await client.users_info(user=user)).get("user") or {}
        except SlackApiError as error:  # e.g. missing users:read: treated as a member
            log.warning("users.info for %s failed: %s", user, slack_error(error))
            info = {}
        workspace_admin = bool(info.get("is_admin") or info.get("is_owner"))
        return Actor(PLATFORM, user, server_id=team, server_admin=workspace_admin)


async def _post_charts(reply: AdminReply, client: AsyncWebClient, channel: str) -> str:
    """Upload the reply's charts to the channel; the answer says when Slack refused one."""
    text = reply.text
    for chart in reply.charts:
        try:
            await client.files_upload_v2(
                channel=channel, content=chart.png, filename=chart.filename, title=chart.title
            )
        except SlackApiError as error:
            text += f"\n_(chart not posted: Slack said `{slack_error(error)}`)_"
            break
    return text
