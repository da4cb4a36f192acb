"""A burst: 1,000 members send `/generate` at once to the real `gpt2bot run --platform discord`.

The fake Discord enforces the 3-second rule (a callback later than that gets 10062, and the
member sees "The application did not respond"), so this counts what members would see: every
interaction acknowledged in time, and the burst served within `ENGINE_MAX_WAIT_S` instead of
being told "busy". Not a timed unit test: the counts are what Discord's rule decides.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.discord import payloads as p
from tests.discord.fake_discord import ACK_DEADLINE_S, FakeDiscord
from tests.discord.fake_records import Interaction
from tests.discord.process import LINES, START_TIMEOUT_S, environment, save_tiny_model, start

MEMBERS = 1000
MAX_WAIT_S = 60.0  # ENGINE_MAX_WAIT_S of the run: the engine admits what it can start by then
SERVED_SHARE = 0.95  # of the burst generated within MAX_WAIT_S
SETTLE_TIMEOUT_S = 120.0  # every member has an answer (text or a sentence) by then
FOOTER = "· model burst-1 ·"


@pytest.fixture(scope="module")
def burst_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # the offline bootstrap model's shape (4 layers, 192 wide): a realistic step time
    return save_tiny_model(tmp_path_factory.mktemp("models") / "burst-1", n_embd=192, n_layer=4)


def generated_at(fake: FakeDiscord, interaction: Interaction) -> float | None:
    """When the member's answer got its footer (the generation's end), if it did."""
    if interaction.original_id is None:
        return None
    edits = fake.messages[interaction.original_id].edits
    return next((at for at, content in edits if FOOTER in content), None)


def answered(fake: FakeDiscord, interaction: Interaction) -> bool:
    """The member has a finished answer or a private sentence (busy, refused)."""
    if generated_at(fake, interaction) is not None:
        return True
    ids = [interaction.original_id, *interaction.followup_ids]
    messages = [fake.messages[i] for i in ids if i is not None]
    return any(m.ephemeral and m.content for m in messages)


@pytest.mark.slow
async def test_a_burst_of_1000_members_is_acknowledged_and_served(fake, tmp_path, burst_model):
    env = environment(fake, tmp_path, burst_model, fake.token)
    env.update(
        ENGINE_MAX_WAIT_S=str(MAX_WAIT_S),
        DISCORD_EDIT_INTERVAL_SECONDS="1.0",
        OMP_NUM_THREADS="1",  # the test process (the fake Discord) needs the other core
    )
    process = await start(env, tmp_path)
    log: list[str] = []

    async def drain() -> None:  # 1,000 generations log more than a pipe holds
        assert process.stderr is not None
        async for line in process.stderr:
            log.append(line.decode())

    reader = asyncio.create_task(drain())
    try:
        await fake.wait_for(lambda: fake.identified, START_TIMEOUT_S, "the bot process to connect")
        members = [p.Member(fake.next_id(), f"member{n}") for n in range(MEMBERS)]
        began = time.monotonic()
        interactions = [
            await fake.slash(
                "generate",
                {"prompt": LINES[n % 3] + f" ({n})", "max_new_tokens": 16},
                member=member,
            )
            for n, member in enumerate(members)
        ]
        deadline = began + SETTLE_TIMEOUT_S
        while time.monotonic() < deadline and not all(answered(fake, i) for i in interactions):
            await asyncio.sleep(0.5)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
        await reader

    late = [i for i in interactions if i.callback_at is None]
    slowest = max((i.callback_at - i.created for i in interactions if i.callback_at), default=0)
    unanswered = sum(not answered(fake, i) for i in interactions)
    served = [t for i in interactions if (t := generated_at(fake, i)) is not None]
    served_in_time = [t for t in served if t - began <= MAX_WAIT_S]
    text = "".join(log)
    busy = sum(m.ephemeral and "busy" in m.content for m in fake.messages.values())
    print(
        f"burst of {MEMBERS}: {MEMBERS - len(late)} acknowledged within {ACK_DEADLINE_S} s "
        f"(slowest {slowest:.2f} s), {len(served)} generated, {len(served_in_time)} within "
        f"{MAX_WAIT_S:.0f} s (last at {max(served, default=began) - began:.1f} s), {busy} busy, "
        f"{unanswered} without an answer, {text.count('Traceback')} tracebacks in the log"
    )
    assert not late, f"{len(late)} of {MEMBERS} were not acknowledged within {ACK_DEADLINE_S} s"
    assert len(served_in_time) >= SERVED_SHARE * MEMBERS
    assert "Traceback" not in text, text[-3000:]
