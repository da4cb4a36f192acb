"""linechat: gpt2bot on a line protocol over a local TCP socket (try it with `nc`).

Each line a client sends is a command; every answer ends with a line holding a single `.`:

    /generate Once upon a time      the text streams in, then `#12 (version tiny-1)`
    /rate 12 up                     👍 (or `down`, or `none` to take the rating back)
    /login TOKEN                    become one of the bot's owners (LINECHAT_ADMIN_TOKEN)
    /admin model list               any `/admin` command (`/admin help` lists them)

Anyone who can reach the socket can chat, so it listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from dataclasses import dataclass, field

from bot import plugin_api as gpt2bot

gpt2bot.require_api(1)
log = logging.getLogger(__name__)

PLATFORM = "linechat"
END = "."  # a line of its own ends every answer, so a client knows when to read on
HELP = "Commands: /generate PROMPT · /rate ID up|down|none · /login TOKEN · /admin help · /quit"
RATINGS = {"up": "👍", "down": "👎"}
GOODBYE = "! The bot is stopping; connect again in a minute."


@dataclass(frozen=True)
class LinechatConfig:
    # who sends `/login` with this token is one of the bot's owners; unset: nobody is
    admin_token: str | None = field(
        default=None, metadata={"env": "LINECHAT_ADMIN_TOKEN", "help": "the /login token"}
    )

    def check(self) -> None:
        if self.admin_token is not None and len(self.admin_token) < 16:
            raise ValueError(
                "LINECHAT_ADMIN_TOKEN",
                "is shorter than 16 characters",
                "Use a long random value, e.g. the output of `openssl rand -hex 16`.",
            )


class Linechat:
    """One TCP server; one session per connection, its user named `guest-N`."""

    name = PLATFORM

    def __init__(self, app: gpt2bot.AppHandle, options: gpt2bot.RunOptions, config: LinechatConfig):
        self.app, self.options, self.config = app, options, config
        self.admin = gpt2bot.admin_commands(app, gpt2bot.Surface(code=str))
        self._guests = itertools.count(1)
        self._stopping = asyncio.Event()
        self._clients: set[asyncio.StreamWriter] = set()

    async def run(self) -> None:
        server = await asyncio.start_server(self._session, self.options.host, self.options.port)
        async with server:
            await self._stopping.wait()
            for writer in list(self._clients):  # open sessions end too, told why
                writer.write(f"{GOODBYE}\n{END}\n".encode())
                writer.close()

    async def stop(self) -> None:
        self._stopping.set()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        user = f"guest-{next(self._guests)}"
        self._clients.add(writer)
        writer.write(f"Hello {user}. {HELP}\n{END}\n".encode())
        try:
            await self._serve(reader, writer, user)
        except ConnectionError:
            pass  # the client went away mid-answer
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, user: str
    ) -> None:
        owner = False
        async for raw in reader:
            command, _, rest = raw.decode(errors="replace").strip().partition(" ")
            if command == "/quit":
                break
            if command == "/login":
                owner = self._login(rest.strip())
                writer.write(b"You are an owner now.\n" if owner else b"! Wrong token.\n")
            else:
                actor = gpt2bot.Actor(PLATFORM, user, owner=owner)
                await self._answer(command, rest.strip(), actor, writer)
            writer.write(f"{END}\n".encode())
            await writer.drain()

    def _login(self, token: str) -> bool:
        expected = self.config.admin_token
        return expected is not None and secrets.compare_digest(token, expected)

    async def _answer(
        self, command: str, rest: str, actor: gpt2bot.Actor, writer: asyncio.StreamWriter
    ) -> None:
        origin = gpt2bot.Origin(PLATFORM, actor.user_id)
        try:
            if command == "/generate":
                await self._generate(origin, rest, writer)
            elif command == "/rate":
                writer.write(f"{await self._rate(origin, rest)}\n".encode())
            elif command == "/admin":
                reply = await self.admin.run(actor, rest)
                charts = "".join(f"\n(chart: {chart.title})" for chart in reply.charts)
                writer.write(f"{reply.text}{charts}\n".encode())
            else:
                writer.write(f"{HELP}\n".encode())
        except (gpt2bot.InvalidRequest, gpt2bot.BackendError) as error:
            writer.write(f"! {error}\n".encode())  # written for the member: shown as is
        except Exception:  # anything else is ours to fix: logged, never shown raw
            log.exception("linechat: %s failed", command)
            writer.write(b"! Something went wrong on our side. Please try again later.\n")

    async def _generate(self, origin: gpt2bot.Origin, prompt: str, writer: asyncio.StreamWriter):
        async for event in self.app.chat.generate_stream(origin, prompt):
            if isinstance(event, gpt2bot.Chunk) and event.sample == 0:
                writer.write(event.text.encode())  # the first sample streams in
                await writer.drain()
            elif isinstance(event, gpt2bot.Finished):
                first, *others = event.generations
                writer.write(f"\n#{first.id} (version {first.model_version})\n".encode())
                for extra in others:
                    writer.write(f"{extra.output}\n#{extra.id}\n".encode())

    async def _rate(self, origin: gpt2bot.Origin, rest: str) -> str:
        words = rest.split()
        if (
            len(words) != 2
            or not words[0].lstrip("#").isdigit()
            or words[1] not in (*RATINGS, "none")
        ):
            return "! Say `/rate ID up`, `/rate ID down` or `/rate ID none`."
        generation_id = int(words[0].lstrip("#"))
        if words[1] == "none":
            removed = await self.app.chat.unrate(generation_id, origin.user_id)
            return "Rating removed." if removed else "You had not rated it."
        await self.app.chat.rate(generation_id, origin.user_id, RATINGS[words[1]])
        return f"Rated #{generation_id} {RATINGS[words[1]]}."


@gpt2bot.uses_config(LinechatConfig)
def create(app: gpt2bot.AppHandle, options: gpt2bot.RunOptions, config: LinechatConfig) -> Linechat:
    """The `gpt2bot.platforms` entry point: `gpt2bot run --platform linechat --port 7000`."""
    return Linechat(app, options, config)
