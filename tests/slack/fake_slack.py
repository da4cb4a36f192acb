"""A fake of Slack's Web API on 127.0.0.1, speaking its JSON, for the real `AsyncWebClient`.

It answers the methods the bot calls (`auth.test`, `chat.*`, `reactions.add`, the
`files.*UploadExternal` pair and the upload URL) the way https://api.slack.com/methods
documents them, keeps the messages it was sent, takes `response_url` posts, and can answer
429 with `Retry-After` or a Slack error such as `not_in_channel` on request.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
TEAM_ID = "T0001"


@dataclass
class Call:
    method: str
    args: dict[str, Any]


@dataclass
class FakeSlack:
    calls: list[Call] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)  # posts to response URLs
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    rate_limited: dict[str, int] = field(default_factory=dict)  # method -> 429s still to send
    closed_channels: set[str] = field(default_factory=set)  # the bot is not a member
    workspace_admins: set[str] = field(default_factory=set)  # users.info says is_admin
    uploads: list[bytes] = field(default_factory=list)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)  # Socket Mode clients
    acks: list[dict[str, Any]] = field(default_factory=list)  # what they sent back
    slow: dict[str, float] = field(default_factory=dict)  # method -> seconds before it answers

    def __post_init__(self) -> None:
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._changed = asyncio.Event()

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # e.g. users.info
        app.router.add_post("/respond/{token}", self._respond)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        for ws in self.sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def response_url(self, token: str = "r1") -> str:
        return f"{self.url}/respond/{token}"

    def called(self, method: str) -> list[dict[str, Any]]:
        return [c.args for c in self.calls if c.method == method]

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until `condition()` is truthy (checked after every request); return its value."""
        async with asyncio.timeout(timeout):
            while not (value := condition()):
                self._changed.clear()
                await self._changed.wait()
        return value

    def _record(self, method: str, args: dict[str, Any]) -> None:
        self.calls.append(Call(method, args))
        self._changed.set()

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        token = "xapp-1-test" if method == "apps.connections.open" else "xoxb-test"
        if request.headers.get("Authorization") != f"Bearer {token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        args: dict[str, Any] = dict(request.query)  # slack_sdk sends some methods' args here
        if request.content_type == "application/json":
            args.update(await request.json())
        else:
            args.update(await request.post())
        self._record(method, args)
        await asyncio.sleep(self.slow.get(method, 0.0))
        if self.rate_limited.get(method, 0) > 0:
            self.rate_limited[method] -= 1
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "0"}
            )
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        return web.json_response(handler(args))

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "channel": {"id": f"D{args['users']}"}}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = args["user"]
        admin = user in self.workspace_admins
        return {
            "ok": True,
            "user": {"id": user, "team_id": TEAM_ID, "is_admin": admin, "is_owner": False},
        }

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://test.slack.com/",
            "team": "Test",
            "user": "gpt2bot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args["channel"]
        if channel in self.closed_channels:
            return {"ok": False, "error": "not_in_channel"}
        ts = f"1700000000.{next(self._ts):06d}"
        message = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "ts": ts,
            "text": args["text"],
            "thread_ts": args.get("thread_ts"),
        }
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (args["channel"], args["ts"])
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        self.messages[key]["text"] = args["text"]
        return {"ok": True, "channel": key[0], "ts": key[1], "text": args["text"]}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": f"1700000000.{next(self._ts):06d}"}

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        if (args["channel"], args["timestamp"]) not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True}

    def _files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._ts)}"
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "files": [{"id": "F1", "title": "chart"}]}

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.url.replace("http://", "ws://") + "/socket"}

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode: say hello, then read the client's acks until it goes away."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "fake", "approximate_connection_time": 3600},
                "connection_info": {"app_id": "A0001"},
            }
        )
        self._record("socket_open", {})
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.acks.append(json.loads(message.data))
                self._record("socket_ack", self.acks[-1])
        return ws

    async def push(self, envelope: dict[str, Any]) -> None:
        """Send a Socket Mode envelope (a slash command, an event) to the connected bot."""
        await self.sockets[-1].send_json(envelope)

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.responses.append(body)
        self._record("response_url", body)
        return web.Response(text="ok")

    async def _upload(self, request: web.Request) -> web.Response:
        data = await request.read()
        self.uploads.append(data)
        self._record("upload", {"file_id": request.match_info["file_id"], "size": len(data)})
        return web.Response(text=f"OK - {len(data)}")

    def text_of(self, channel: str, ts: str) -> str:
        return str(self.messages[(channel, ts)]["text"])
