"""A fake Discord on 127.0.0.1 that the real discord.py client talks to (test support).

It speaks the wire format: REST under `/api/v10` (answers with `Content-Type:
application/json` exactly; discord.py treats anything else as text) and the gateway websocket
(HELLO, IDENTIFY, READY, GUILD_CREATE, heartbeats, zlib-stream transport compression when
the client asks for it). Tests dispatch INTERACTION_CREATE, MESSAGE_REACTION_ADD/REMOVE and
members' MESSAGE_CREATE (`say`), and look at what the bot did: every REST call is recorded,
messages are kept with their edits, threads the bot opens with their state.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import zlib
from typing import Any

from aiohttp import WSMsgType, web

from tests.discord import chat_payloads as chat
from tests.discord import payloads as p
from tests.discord.fake_records import Call, Interaction, Message, error, json_response

API = "/api/v10"
# Discord forgets an interaction that is not acknowledged within 3 s: the member sees "The
# application did not respond" and a late callback gets 10062 Unknown interaction.
ACK_DEADLINE_S = 3.0
BOT_AUTHORIZED = ("users", "oauth2", "gateway", "applications", "channels")


class FakeDiscord:
    def __init__(self, token: str = "fake-bot-token") -> None:
        self.token = token
        self._ids = itertools.count(1_200_000_000_000_000_000)
        self.app_id = self.bot_id = self.next_id()
        self.guild_id, self.channel_id, self.admin_role_id = (self.next_id() for _ in range(3))
        # a second server the bot is in, with its own channel (several-servers tests)
        self.other_guild_id, self.other_channel_id = self.next_id(), self.next_id()
        self.bot = p.Member(self.bot_id, "gpt2bot", bot=True)
        self.alice = p.Member(self.next_id(), "alice")
        self.bob = p.Member(self.next_id(), "bob")
        self.boss = p.Member(self.next_id(), "boss", permissions=p.ADMINISTRATOR)
        self.calls: list[Call] = []
        self.messages: dict[int, Message] = {}
        self.interactions: dict[str, Interaction] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {}  # guild id (None: global)
        self.attachments: dict[int, bytes] = {}
        self.threads: dict[int, dict[str, Any]] = {}  # thread id -> its channel payload
        self.identified = 0
        self.ack_deadline_s = ACK_DEADLINE_S
        self.recommended_shards = 1  # what GET /gateway/bot tells an AutoShardedClient
        self.shards_identified: list[list[int] | None] = []  # IDENTIFY's `shard`, in order
        self.identify_payloads: list[dict[str, Any]] = []
        self.transport_compression: list[str | None] = []
        self._sockets: list[web.WebSocketResponse] = []
        self._send: Any = None
        self._seq = 0
        self._echoes: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def next_id(self) -> int:
        return next(self._ids)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{id}/{name}", self._attachment)
        app.router.add_route("*", API + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---------------------------------------------------------------- test helpers

    async def wait_for(self, predicate: Any, timeout: float = 10.0, what: str = "") -> Any:
        """Poll until `predicate()` is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or predicate}")
            await asyncio.sleep(0.01)

    def calls_to(self, method: str, fragment: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and fragment in c.path]

    def channel_messages(self) -> list[Message]:
        return [m for m in self.messages.values() if m.interaction_id is None and not m.deleted]

    async def slash(
        self,
        command: str,
        options: dict[str, Any] | None = None,
        member: p.Member | None = None,
        in_guild: bool = True,
        attachments: dict[str, tuple[str, bytes]] | None = None,
        guild_id: int | None = None,
        channel_id: int | None = None,
    ) -> Interaction:
        """Dispatch INTERACTION_CREATE for `/command ...` as `member` (default alice), in the
        first server's #general unless `guild_id`/`channel_id` say otherwise."""
        member = member or self.alice
        guild_id = guild_id or self.guild_id
        channel_id = channel_id or (
            self.channel_id if guild_id == self.guild_id else self.other_channel_id
        )
        path = command.split()
        data: dict[str, Any] = {"id": str(self.next_id()), "name": path[0], "type": 1}
        resolved: dict[str, Any] = {}
        leaf_options = self._options(path, options or {}, attachments or {}, resolved)
        data["options"] = self._nest(path, leaf_options)
        if resolved:
            data["resolved"] = {"attachments": resolved}
        if in_guild:
            data["guild_id"] = str(guild_id)
        interaction = Interaction(self.next_id(), f"itoken-{self.next_id()}", time.monotonic())
        self.interactions[interaction.token] = interaction
        payload: dict[str, Any] = {
            "id": str(interaction.id),
            "application_id": str(self.app_id),
            "type": 2,
            "token": interaction.token,
            "version": 1,
            "data": data,
            "locale": "en-US",
            "app_permissions": str(p.MEMBER_PERMISSIONS),
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "attachment_size_limit": 8 * 1024 * 1024,
            "context": 0 if in_guild else 1,
        }
        if in_guild:
            channel = p.text_channel(channel_id, guild_id, "general")
            payload.update(
                guild_id=str(guild_id),
                channel_id=str(channel_id),
                channel=channel,
                member=member.payload(),
                guild_locale="en-US",
                guild={"id": str(guild_id), "locale": "en-US", "features": []},
            )
        else:
            dm = {
                "id": str(self.next_id()),
                "type": 1,
                "recipients": [p.user(member.id, member.name)],
            }
            payload.update(channel_id=dm["id"], channel=dm, user=p.user(member.id, member.name))
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    async def press(self, message_id: int, custom_id: str, member: p.Member) -> Interaction:
        """Dispatch INTERACTION_CREATE for a click on the button `custom_id` of a message
        (a component interaction, type 3), as `member` in the first server."""
        message = self.messages[message_id]
        assert custom_id in message.buttons, f"no button {custom_id!r} on message {message_id}"
        interaction = Interaction(self.next_id(), f"itoken-{self.next_id()}", time.monotonic())
        interaction.message_id = message_id
        self.interactions[interaction.token] = interaction
        payload: dict[str, Any] = {
            "id": str(interaction.id),
            "application_id": str(self.app_id),
            "type": 3,
            "token": interaction.token,
            "version": 1,
            "data": {"custom_id": custom_id, "component_type": 2},
            "message": self._payload(message),
            "locale": "en-US",
            "app_permissions": str(p.MEMBER_PERMISSIONS),
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(self.guild_id)},
            "attachment_size_limit": 8 * 1024 * 1024,
            "context": 0,
            "guild_id": str(self.guild_id),
            "channel_id": str(message.channel_id),
            "channel": p.text_channel(message.channel_id, self.guild_id, "general"),
            "member": member.payload(),
            "guild_locale": "en-US",
            "guild": {"id": str(self.guild_id), "locale": "en-US", "features": []},
        }
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    async def react(self, message_id: int, emoji: str, member: p.Member, add: bool = True) -> None:
        message = self.messages.get(message_id)
        channel_id = message.channel_id if message else self.channel_id
        event = p.reaction_event(message_id, channel_id, self.guild_id, member.id, emoji)
        if add:
            event["member"] = member.payload()
            self.messages.get(message_id, Message(0, 0, "")).reactions.setdefault(emoji, set()).add(
                member.id
            )
        else:
            self.messages.get(message_id, Message(0, 0, "")).reactions.get(emoji, set()).discard(
                member.id
            )
        await self.dispatch("MESSAGE_REACTION_ADD" if add else "MESSAGE_REACTION_REMOVE", event)

    async def say(
        self,
        content: str,
        member: p.Member | None = None,
        *,
        channel_id: int | None = None,
        reply_to: int | None = None,
        mention: bool | None = None,
        in_guild: bool = True,
    ) -> Message:
        """A member writes a message (default alice in #general): MESSAGE_CREATE as Discord
        sends it. `reply_to` a message id makes it a reply, which mentions the replied author
        (the bot) unless `mention` is False; otherwise `mention` puts `<@bot>` in front. Its
        text reaches the bot only where Discord would deliver it (`chat_payloads.readable`)."""
        member = member or self.alice
        channel_id = channel_id or self.channel_id
        if mention is None:  # a reply pings the replied author unless the member turns it off
            mention = reply_to is not None and self.messages[reply_to].author_id is None
        elif mention and reply_to is None:
            content = f"<@{self.bot_id}> {content}"
        message = Message(self.next_id(), channel_id, content, author_id=member.id)
        message.reference_id = reply_to
        self.messages[message.id] = message
        intents = self.identify_payloads[-1].get("intents", 0) if self.identify_payloads else 0
        mentions = [self.bot] if mention else []
        reference = (self.messages[reply_to].channel_id, reply_to) if reply_to else None
        data = chat.member_message(
            message.id,
            channel_id,
            self.guild_id if in_guild else None,
            member,
            chat.readable(content, intents, mention, in_guild),
            mentions,
            reference,
        )
        replied = self.messages.get(reply_to) if reply_to else None
        if replied is not None and replied.author_id is None:  # the bot's: Discord sends it along
            data["referenced_message"] = self._payload(replied)
        await self.dispatch("MESSAGE_CREATE", data)
        return message

    def replies_to(self, message_id: int) -> list[Message]:
        """The bot's messages that reply to `message_id`, oldest first."""
        return [
            m
            for m in self.messages.values()
            if m.reference_id == message_id and m.author_id is None and not m.deleted
        ]

    def _find_command(self, name: str) -> dict[str, Any]:
        for commands in self.commands.values():
            for command in commands:
                if command["name"] == name:
                    return command
        raise AssertionError(f"/{name} was never registered")

    def _options(
        self,
        path: list[str],
        values: dict[str, Any],
        attachments: dict[str, tuple[str, bytes]],
        resolved: dict[str, Any],
    ) -> list[dict[str, Any]]:
        spec = self._find_command(path[0])
        for part in path[1:]:
            spec = next(o for o in spec.get("options", []) if o["name"] == part)
        types = {o["name"]: o["type"] for o in spec.get("options", [])}
        options = [
            {"name": k, "type": types.get(k, p.option_type_of(v)), "value": v}
            for k, v in values.items()
        ]
        for name, (filename, content) in attachments.items():
            attachment_id = self.next_id()
            self.attachments[attachment_id] = content
            url = f"http://127.0.0.1:{self.port}/attachments/{attachment_id}/{filename}"
            resolved[str(attachment_id)] = {
                "id": str(attachment_id),
                "filename": filename,
                "size": len(content),
                "url": url,
                "proxy_url": url,
                "content_type": "text/plain",
            }
            options.append({"name": name, "type": p.ATTACHMENT, "value": str(attachment_id)})
        return options

    @staticmethod
    def _nest(path: list[str], leaf: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(path) == 1:
            return leaf
        if len(path) == 2:
            return [{"name": path[1], "type": p.SUB_COMMAND, "options": leaf}]
        sub = {"name": path[2], "type": p.SUB_COMMAND, "options": leaf}
        return [{"name": path[1], "type": p.SUB_COMMAND_GROUP, "options": [sub]}]

    # ---------------------------------------------------------------- gateway

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        if self._send is None:
            raise AssertionError(f"no bot is connected to the gateway to receive {event}")
        self._seq += 1
        await self._send({"op": 0, "t": event, "s": self._seq, "d": data})

    async def _echo(self, event: str, data: dict[str, Any]) -> None:
        if self._send is not None:
            await self.dispatch(event, data)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        compression = request.query.get("compress")
        self.transport_compression.append(compression)
        compressor = zlib.compressobj() if compression == "zlib-stream" else None
        lock = asyncio.Lock()

        async def send(message: dict[str, Any]) -> None:
            raw = json.dumps(message)
            async with lock:
                if compressor is None:
                    await ws.send_str(raw)
                else:  # one zlib stream per connection, each message ends with a sync flush
                    data = compressor.compress(raw.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
                    await ws.send_bytes(data)

        await send({"op": 10, "d": {"heartbeat_interval": 41250}})
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                message = json.loads(frame.data)
                if message["op"] == 1:  # heartbeat
                    await send({"op": 11})
                elif message["op"] == 2:  # identify
                    if message["d"]["token"] != self.token:
                        await ws.close(code=4004, message=b"Authentication failed.")
                        break
                    self.identify_payloads.append(message["d"])
                    shard = message["d"].get("shard")
                    self.shards_identified.append(shard)
                    has_guild = shard is None or (self.guild_id >> 22) % shard[1] == shard[0]
                    if has_guild:  # events of the guild go to the shard that has it
                        self._send = send
                    await self._ready(send, has_guild, shard)
                elif message["op"] == 6:  # resume: not supported, start over
                    await send({"op": 9, "d": False})
        finally:
            self._sockets.remove(ws)
            if self._send is send:
                self._send = None
        return ws

    async def _ready(
        self, send: Any, has_guild: bool = True, shard: list[int] | None = None
    ) -> None:
        self._seq += 1
        await send(
            {
                "op": 0,
                "t": "READY",
                "s": self._seq,
                "d": {
                    "v": 10,
                    "user": p.user(self.bot_id, "gpt2bot", bot=True),
                    "guilds": [{"id": str(self.guild_id), "unavailable": True}]
                    if has_guild
                    else [],
                    "session_id": "fake-session",
                    "resume_gateway_url": self.gateway_url,
                    "application": {"id": str(self.app_id), "flags": 0},
                    "private_channels": [],
                    "relationships": [],
                    "presences": [],
                    "_trace": ["fake"],
                    **({"shard": shard} if shard is not None else {}),
                },
            }
        )
        roles = [
            p.role(self.guild_id, "@everyone", p.MEMBER_PERMISSIONS, 0),
            p.role(self.admin_role_id, "gpt2bot-admin", 0, 1),
        ]
        channels = [p.text_channel(self.channel_id, self.guild_id, "general")]
        members = [self.bot.payload()]
        if has_guild:
            self._seq += 1
            guild = p.guild(self.guild_id, roles, channels, members, owner_id=self.boss.id)
            await send({"op": 0, "t": "GUILD_CREATE", "s": self._seq, "d": guild})
        if shard is None:  # the second server, for the several-servers tests (unsharded)
            self._seq += 1
            other = p.guild(
                self.other_guild_id,
                [p.role(self.other_guild_id, "@everyone", p.MEMBER_PERMISSIONS, 0)],
                [p.text_channel(self.other_channel_id, self.other_guild_id, "lobby")],
                [self.bot.payload()],
                owner_id=self.bob.id,
            )
            await send({"op": 0, "t": "GUILD_CREATE", "s": self._seq, "d": other})
        self.identified += 1

    # ---------------------------------------------------------------- REST

    async def _attachment(self, request: web.Request) -> web.Response:
        content = self.attachments.get(int(request.match_info["id"]))
        if content is None:
            return error(404, "404: Not Found")
        return web.Response(body=content, headers={"Content-Type": "text/plain"})

    async def _rest(self, request: web.Request) -> web.Response:
        body: Any = None
        files: list[tuple[str, bytes]] = []
        if request.content_type == "multipart/form-data":
            form = await request.post()
            for key, value in form.items():
                if key == "payload_json":
                    body = json.loads(str(value))
                elif hasattr(value, "file"):
                    files.append((value.filename, value.file.read()))
        elif request.can_read_body:
            body = await request.json()
        call = Call(
            request.method,
            request.path[len(API) :],
            dict(request.query),
            body,
            time.monotonic(),
            files,
        )
        self.calls.append(call)
        parts = call.path.strip("/").split("/")
        if (
            parts[0] in BOT_AUTHORIZED
            and request.headers.get("Authorization") != f"Bot {self.token}"
        ):
            return error(401, "401: Unauthorized")
        return self._setup_route(call, parts) or self._message_route(call, parts)

    def _setup_route(self, call: Call, parts: list[str]) -> web.Response | None:
        match parts:
            case ["users", "@me"]:
                return json_response(p.user(self.bot_id, "gpt2bot", bot=True))
            case ["oauth2", "applications", "@me"]:
                return json_response(p.application(self.app_id, p.user(self.boss.id, "boss")))
            case ["gateway", "bot"]:
                return json_response(
                    {
                        "url": self.gateway_url,
                        "shards": self.recommended_shards,
                        "session_start_limit": {
                            "total": 1000,
                            "remaining": 999,
                            "reset_after": 0,
                            "max_concurrency": 1,
                        },
                    }
                )
            case ["applications", _, "commands"] | ["applications", _, "guilds", _, "commands"]:
                scope = int(parts[3]) if len(parts) == 5 else None
                if call.method == "PUT":
                    self.commands[scope] = [self._registered(c, scope) for c in call.body]
                return json_response(self.commands.get(scope, []))
        return None

    def _message_route(self, call: Call, parts: list[str]) -> web.Response:
        match parts:
            case ["interactions", interaction_id, token, "callback"]:
                return self._callback(int(interaction_id), token, call)
            case ["webhooks", _, token]:
                return self._followup(token, call)
            case ["webhooks", _, token, "messages", message_id]:
                return self._webhook_message(token, message_id, call)
            case ["channels", channel_id, "messages"] if call.method == "POST":
                return self._channel_send(int(channel_id), call)
            case ["channels", _, "messages", message_id]:
                return self._edit_or_delete(int(message_id), call)
            case ["channels", _, "messages", message_id, "reactions", emoji, who]:
                return self._reaction(int(message_id), emoji, who, call.method)
            case ["channels", channel_id, "messages", message_id, "threads"]:
                return self._start_thread(int(channel_id), int(message_id), call)
            case ["channels", channel_id] if call.method == "PATCH":
                return self._edit_thread(int(channel_id), call)
        return error(404, f"404: no fake for {call.method} {call.path}")

    def _registered(self, command: dict[str, Any], guild_id: int | None) -> dict[str, Any]:
        stored = {
            **command,
            "id": str(self.next_id()),
            "application_id": str(self.app_id),
            "version": str(self.next_id()),
        }
        if command.get("default_member_permissions") is not None:
            stored["default_member_permissions"] = str(command["default_member_permissions"])
        if guild_id is not None:
            stored["guild_id"] = str(guild_id)
        return stored

    def _new_message(self, channel_id: int, call: Call, **extra: Any) -> Message:
        body = call.body or {}
        message = Message(
            self.next_id(),
            channel_id,
            body.get("content") or "",
            flags=body.get("flags", 0) or 0,
            files=call.files,
            components=body.get("components") or [],
            **extra,
        )
        message.allowed_mentions.append(body.get("allowed_mentions"))
        message.edits.append((call.at, message.content))
        reference = body.get("message_reference")
        if reference:
            message.reference_id = int(reference["message_id"])
        self.messages[message.id] = message
        return message

    def _payload(self, message: Message) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "guild_id": str(self.guild_id),
            "author": p.user(self.bot_id, "gpt2bot", bot=True),
            "content": message.content,
            "timestamp": p.now_iso(),
            "edited_timestamp": p.now_iso() if len(message.edits) > 1 else None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [
                {
                    "id": str(self.next_id()),
                    "filename": name,
                    "size": len(data),
                    "url": f"http://127.0.0.1:{self.port}/attachments/0/{name}",
                    "proxy_url": f"http://127.0.0.1:{self.port}/attachments/0/{name}",
                }
                for name, data in message.files
            ],
            "embeds": [],
            "pinned": False,
            "type": 19 if message.reference_id else 0,
            "flags": message.flags,
            "components": message.components,
        }
        if message.interaction_id is not None:
            data["webhook_id"] = str(self.app_id)
            data["application_id"] = str(self.app_id)
        return data

    def _callback(self, interaction_id: int, token: str, call: Call) -> web.Response:
        interaction = self.interactions.get(token)
        if interaction is None or interaction.id != interaction_id:
            return error(404, "Unknown interaction", 10062)
        if interaction.callback_type is not None:
            return error(400, "Interaction has already been acknowledged.", 40060)
        if call.at - interaction.created > self.ack_deadline_s:
            interaction.late_callbacks += 1
            return error(404, "Unknown interaction", 10062)
        if call.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        kind = call.body["type"]
        interaction.callback_type, interaction.callback_at = kind, call.at
        data = call.body.get("data") or {}
        if kind in (6, 7) and interaction.message_id is not None:  # (deferred) message update
            return self._update_callback(interaction, kind, data, call)
        fake_call = Call(call.method, call.path, call.query, data, call.at, call.files)
        message = self._new_message(self.channel_id, fake_call, interaction_id=interaction.id)
        interaction.original_id = message.id
        return json_response(
            {
                "interaction": {
                    "id": str(interaction.id),
                    "type": 2,
                    "response_message_id": str(message.id),
                    "response_message_loading": kind == 5,
                    "response_message_ephemeral": message.ephemeral,
                },
                "resource": {"type": kind, "message": self._payload(message)},
            }
        )

    def _update_callback(
        self, interaction: Interaction, kind: int, data: dict[str, Any], call: Call
    ) -> web.Response:
        """A button's interaction answered by editing the message the button is on."""
        assert interaction.message_id is not None
        interaction.original_id = interaction.message_id
        message = self.messages[interaction.message_id]
        if kind == 7:
            edit = Call("PATCH", call.path, call.query, data, call.at, call.files)
            self._edit_or_delete(message.id, edit)
        return json_response(
            {
                "interaction": {
                    "id": str(interaction.id),
                    "type": 3,
                    "response_message_id": str(message.id),
                    "response_message_loading": False,
                    "response_message_ephemeral": message.ephemeral,
                },
                "resource": {"type": kind, "message": self._payload(message)},
            }
        )

    def _followup(self, token: str, call: Call) -> web.Response:
        interaction = self.interactions.get(token)
        if interaction is None or interaction.callback_type is None:
            return error(404, "Unknown Webhook", 10015)
        message = self._new_message(self.channel_id, call, interaction_id=interaction.id)
        interaction.followup_ids.append(message.id)
        return json_response(self._payload(message))

    def _webhook_message(self, token: str, message_id: str, call: Call) -> web.Response:
        interaction = self.interactions.get(token)
        if interaction is None or interaction.original_id is None:
            return error(404, "Unknown Webhook", 10015)
        target = interaction.original_id if message_id == "@original" else int(message_id)
        return self._edit_or_delete(target, call)

    def _start_thread(self, channel_id: int, message_id: int, call: Call) -> web.Response:
        """A thread on a message: like Discord, it has the message's id; THREAD_CREATE follows."""
        if message_id not in self.messages or message_id in self.threads:
            return error(400, "A thread has already been created for this message", 160004)
        body = call.body or {}
        thread = chat.thread_channel(
            message_id,
            self.guild_id,
            channel_id,
            self.bot_id,
            body.get("name", ""),
            body.get("auto_archive_duration", 1440),
        )
        self.threads[message_id] = thread
        task = asyncio.ensure_future(self._echo("THREAD_CREATE", {**thread, "newly_created": True}))
        self._echoes.add(task)
        task.add_done_callback(self._echoes.discard)
        return json_response(thread)

    def _edit_thread(self, channel_id: int, call: Call) -> web.Response:
        thread = self.threads.get(channel_id)
        if thread is None:
            return error(404, "Unknown Channel", 10003)
        for key in ("archived", "locked"):
            if key in (call.body or {}):
                thread["thread_metadata"][key] = bool(call.body[key])
        return json_response(thread)

    def _channel_send(self, channel_id: int, call: Call) -> web.Response:
        return json_response(self._payload(self._new_message(channel_id, call)))

    def _edit_or_delete(self, message_id: int, call: Call) -> web.Response:
        message = self.messages.get(message_id)
        if message is None or message.deleted:
            return error(404, "Unknown Message", 10008)
        if call.method == "DELETE":
            message.deleted = True
            return web.Response(status=204)
        if call.method == "PATCH":
            body = call.body or {}
            if "content" in body:
                message.content = body["content"] or ""
            if "components" in body:
                message.components = body["components"] or []
            message.allowed_mentions.append(body.get("allowed_mentions"))
            message.edits.append((call.at, message.content))
            if call.files:
                message.files = call.files
        return json_response(self._payload(message))

    def _reaction(self, message_id: int, emoji: str, who: str, method: str) -> web.Response:
        message = self.messages.get(message_id)
        if message is None:
            return error(404, "Unknown Message", 10008)
        user_id = self.bot_id if who == "@me" else int(who)
        users = message.reactions.setdefault(emoji, set())
        if (user_id in users) == (method == "PUT"):
            return web.Response(status=204)  # no change, no event (like Discord)
        if method == "PUT":
            users.add(user_id)
        else:
            users.discard(user_id)
        # like Discord, tell the bot about the change, its own reactions included
        event = p.reaction_event(message_id, message.channel_id, self.guild_id, user_id, emoji)
        name = "MESSAGE_REACTION_ADD" if method == "PUT" else "MESSAGE_REACTION_REMOVE"
        task = asyncio.ensure_future(self._echo(name, event))
        self._echoes.add(task)
        task.add_done_callback(self._echoes.discard)
        return web.Response(status=204)
