"""A browser's own data on the web: its conversations read back (the page keeps the open one
in its address, so a reload shows it again), the download of everything it wrote and rated,
and its deletion. A browser is a member here: its id cookie is its identity.
"""

from __future__ import annotations

from aiohttp import web

from bot.chat import ChatService
from bot.mydata import DELETE_WARNING, EXPORT_FILENAME, MyData, deleted_sentence
from bot.params import InvalidRequest
from bot.platforms.web.playground import error_response, generation_json, origin_of, read_json
from bot.platforms.web.security import client_id_of


class MemberApi:
    def __init__(self, chat: ChatService, mydata: MyData) -> None:
        self.chat, self.mydata = chat, mydata

    async def conversation(self, request: web.Request) -> web.Response:
        """One of this browser's conversations in the order it was made."""
        try:
            conversation_id = int(request.match_info["conversation_id"])
            chain = await self.chat.conversation(conversation_id, origin_of(request))
        except (ValueError, InvalidRequest):
            return error_response("There is no such conversation in this browser.", 404)
        viewer = client_id_of(request)
        return web.json_response(
            {"generations": [generation_json(g, viewer) for g in chain]},
            headers={"Cache-Control": "no-store"},
        )

    async def report(self, request: web.Request) -> web.Response:
        """🚩 on one of this browser's outputs (the playground's Report button)."""
        try:
            generation_id = int(request.match_info["generation_id"])
            record = await self.chat.get(generation_id)
        except (ValueError, InvalidRequest):
            return error_response("There is no such generation in this browser.", 404)
        if record.platform != "web" or record.user_id != client_id_of(request):
            return error_response("There is no such generation in this browser.", 404)
        outcome = await self.chat.report(generation_id, client_id_of(request))
        message = "Reported: thanks." + (
            " It is hidden until an admin looks." if outcome.hidden else ""
        )
        return web.json_response({"message": message, "hidden": outcome.hidden})

    async def export(self, request: web.Request) -> web.Response:
        data = await self.mydata.export(origin_of(request))
        return web.Response(
            body=data,
            content_type="application/x-ndjson",
            headers={
                "Content-Disposition": f'attachment; filename="{EXPORT_FILENAME}"',
                "Cache-Control": "no-store",
            },
        )

    async def delete(self, request: web.Request) -> web.Response:
        try:
            confirmed = (await read_json(request)).get("confirm") is True
        except InvalidRequest as error:
            return error_response(str(error))
        if not confirmed:
            return error_response(f"{DELETE_WARNING} Send confirm: true to go ahead.")
        report = await self.mydata.delete(origin_of(request))
        return web.json_response({"message": deleted_sentence(report)})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/conversations/{conversation_id}", self.conversation),
            web.get("/api/mydata", self.export),
            web.post("/api/generations/{generation_id}/report", self.report),
            web.post("/api/mydata/delete", self.delete),
        ]
