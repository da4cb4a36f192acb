"""linechat driven as a user drives it: a TCP client sends lines and reads the answers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from linechat import END, LinechatConfig, create

from bot import plugin_api as gpt2bot

TOKEN = "a-long-enough-admin-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def answer(self) -> str:
        lines = []
        while (line := (await self.reader.readline()).decode()) != f"{END}\n":
            assert line, "the server closed the connection"
            lines.append(line)
        return "".join(lines).rstrip("\n")

    async def send(self, line: str) -> str:
        self.writer.write(f"{line}\n".encode())
        return await asyncio.wait_for(self.answer(), timeout=10)


async def connect(port: int) -> Client:
    for _ in range(100):
        try:
            return Client(*await asyncio.open_connection("127.0.0.1", port))
        except ConnectionRefusedError:
            await asyncio.sleep(0.05)
    pytest.fail("linechat did not start listening")


@pytest.fixture
async def chat(tmp_path) -> AsyncIterator[tuple[Client, gpt2bot.ScriptedBackend]]:
    backend = gpt2bot.ScriptedBackend(text=lambda request, sample: " and they lived.", chunks=3)
    async with gpt2bot.app_for_tests(tmp_path, backend=backend) as app:
        port = free_port()
        platform = create(app, gpt2bot.RunOptions(port=port), LinechatConfig(admin_token=TOKEN))
        serving = asyncio.create_task(platform.run())
        client = await connect(port)
        assert "Hello guest-1" in await client.answer()
        yield client, backend
        client.writer.close()
        await platform.stop()
        await serving


async def test_generate_streams_the_answer_and_it_can_be_rated(chat) -> None:
    client, backend = chat
    answer = await client.send("/generate Once upon a time")
    text, stored = answer.splitlines()
    assert text == " and they lived."
    assert stored == "#1 (version fake-1)"
    assert backend.requests[0].prompt == "Once upon a time"
    assert await client.send("/rate 1 up") == "Rated #1 👍."
    assert await client.send("/rate 1 none") == "Rating removed."
    assert await client.send("/rate 9 up") == "! There is no generation #9."


async def test_a_refused_prompt_is_one_sentence_and_nothing_is_generated(chat) -> None:
    client, backend = chat
    answer = await client.send("/generate a badword here")
    assert answer.startswith("! ") and "blocked term" in answer
    assert backend.requests == []
    assert (await client.send("/generate")).startswith("! ")


async def test_admin_commands_need_the_token(chat) -> None:
    client, _ = chat
    assert "only" in await client.send("/admin model list")
    assert await client.send("/login wrong") == "! Wrong token."
    assert await client.send(f"/login {TOKEN}") == "You are an owner now."
    assert await client.send("/admin model list") == "No model versions yet."
    assert "added 1" in await client.send("/admin curate add A good example of our style.")
    assert "A good example of our style." in await client.send("/admin curate list")
    assert "/admin model list" in await client.send("/admin help")


async def test_stopping_tells_connected_members_and_ends_their_sessions(tmp_path) -> None:
    async with gpt2bot.app_for_tests(tmp_path) as app:
        port = free_port()
        platform = create(app, gpt2bot.RunOptions(port=port), LinechatConfig())
        serving = asyncio.create_task(platform.run())
        client = await connect(port)
        await client.answer()
        await platform.stop()
        await asyncio.wait_for(serving, timeout=10)
        assert (await client.answer()).startswith("! The bot is stopping")
        assert await client.reader.read() == b""  # the session ended
        client.writer.close()


def test_a_short_admin_token_is_refused_before_start() -> None:
    with pytest.raises(ValueError, match="LINECHAT_ADMIN_TOKEN"):
        LinechatConfig(admin_token="short").check()
