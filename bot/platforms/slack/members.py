"""`/mydata export|delete [confirm]` on Slack: a member's own data. The export is uploaded into
the member's direct messages with the bot (only they see it); the answers are ephemeral.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat import Origin
from bot.mydata import DELETE_WARNING, EXPORT_FILENAME, MyData, deleted_sentence
from bot.platforms.slack.chat import PLATFORM, incident_sentence
from bot.platforms.slack.text import slack_error

log = logging.getLogger(__name__)

COMMAND = "/mydata"
USAGE = f"`{COMMAND} export` sends you your data · `{COMMAND} delete` deletes it"


class SlackMyData:
    def __init__(self, mydata: MyData) -> None:
        self.mydata = mydata

    async def command(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        origin = Origin(PLATFORM, command["user_id"], command.get("team_id"))
        words = command.get("text", "").split()
        try:
            if words == ["export"]:
                answer = await self._export(origin, client)
            elif words[:1] == ["delete"]:
                answer = await self._delete(origin, confirmed=words[1:] == ["confirm"])
            else:
                answer = USAGE
        except Exception as error:
            answer = incident_sentence(error)
        await respond(text=answer, response_type="ephemeral")

    async def _export(self, origin: Origin, client: AsyncWebClient) -> str:
        data = await self.mydata.export(origin)
        try:
            opened = await client.conversations_open(users=origin.user_id)
            channel = opened["channel"]["id"]
            await client.files_upload_v2(
                channel=channel, content=data, filename=EXPORT_FILENAME, title="Your gpt2bot data"
            )
        except SlackApiError as error:
            log.warning("could not send %s their data: %s", origin.user_id, slack_error(error))
            return f"I could not send you the file (Slack said `{slack_error(error)}`)."
        return "I sent your data (prompts, outputs and ratings) to our direct messages."

    async def _delete(self, origin: Origin, confirmed: bool) -> str:
        if not confirmed:
            return f"{DELETE_WARNING} To go ahead: `{COMMAND} delete confirm`."
        return deleted_sentence(await self.mydata.delete(origin))
