"""The `openai` backend against a real `transformers serve` on 127.0.0.1 (no mock server)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from transformers.utils.import_utils import is_serve_available

from model.backends.base import Backend, BackendError, Chunk, GenerationRequest, SamplingParams
from model.backends.openai_compat import OpenAIBackend
from model.config import ModelConfig, OpenAIConfig
from model.engine import Engine, EngineConfig
from tests.model.conftest import loader

STARTUP_S = 120  # the server imports torch and transformers: slow on a busy 2-core machine
REQUEST_TIMEOUT_S = 60.0  # a stuck request fails the test with TimedOut instead of hanging it
SERVE = shutil.which("transformers", path=str(Path(sys.executable).parent))

# The `transformers` script exists without the serving extra; `serve` then exits at once.
pytestmark = pytest.mark.skipif(
    SERVE is None or not is_serve_available(),
    reason="`transformers serve` needs its extra: pip install -e '.[serving]'",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(model_versions, tmp_path_factory):
    port = free_port()
    command = [str(SERVE), "serve", str(model_versions["v1"]), "--host", "127.0.0.1"]
    # A file, not a pipe: nobody reads a pipe while the tests run, and a server that fills
    # one blocks on its next log line.
    log_path = tmp_path_factory.mktemp("serve") / "stderr.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log_file
        )
    deadline = time.monotonic() + STARTUP_S
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    error = log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"transformers serve did not start:\n{error}") from None
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def backend_for(url: str, path: Path, **limits: object) -> OpenAIBackend:
    limits = {"timeout_s": REQUEST_TIMEOUT_S, **limits}
    config = ModelConfig(engine=EngineConfig(**limits), openai=OpenAIConfig(base_url=url))  # type: ignore[arg-type]
    return OpenAIBackend(config, "v1", str(path))


async def test_streams_the_same_greedy_text_as_the_local_engine(server, model_versions):
    backend = backend_for(server, model_versions["v1"])
    assert isinstance(backend, Backend)
    await backend.start()
    params = SamplingParams(temperature=0, max_new_tokens=20, repetition_penalty=1.0)
    try:
        handle = backend.submit(GenerationRequest("A language model is", params))
        chunks = [e for e in [event async for event in handle] if isinstance(e, Chunk)]
        result = await handle.result()
    finally:
        await backend.close()
    engine = Engine(EngineConfig(metrics_log_interval_s=0), loader())
    await engine.start("v1", str(model_versions["v1"]))
    try:
        local = await engine.submit(GenerationRequest("A language model is", params)).result()
    finally:
        await engine.close()
    assert len(chunks) > 1  # it streamed
    assert "".join(c.text for c in chunks) == result.texts[0]
    assert result.texts == local.texts
    assert result.model_version == "v1" and result.completion_tokens[0] == 20
    assert backend.metrics()["completed"] == 1


async def test_samples_cancel_and_unreachable_server(server, model_versions):
    backend = backend_for(server, model_versions["v1"])
    await backend.start()
    try:
        two = backend.submit(
            GenerationRequest("Models", SamplingParams(samples=2, max_new_tokens=8))
        )
        result = await two.result()
        assert len(result.texts) == 2 and all(result.texts)
        long = backend.submit(GenerationRequest("Models", SamplingParams(max_new_tokens=500)))
        await asyncio.sleep(0.2)
        long.cancel()
        with pytest.raises(BackendError, match="cancelled"):
            await long.result()
        left = backend.submit(GenerationRequest("Models", SamplingParams(max_new_tokens=500)))
        await asyncio.sleep(0.2)
        await backend.close()  # shutting down answers what is still streaming
        with pytest.raises(BackendError, match="cancelled"):
            await asyncio.wait_for(left.result(), 10)
    finally:
        await backend.close()
    dead = backend_for(f"http://127.0.0.1:{free_port()}/v1", model_versions["v1"])
    await dead.start()
    try:
        with pytest.raises(BackendError, match="cannot be reached"):
            await dead.submit(GenerationRequest("hi", SamplingParams(max_new_tokens=4))).result()
    finally:
        await dead.close()


async def test_per_user_limit_and_cancel_before_the_request_starts(model_versions):
    # Nothing listens on the port; the request is cancelled before its task ever runs.
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = backend_for(url, model_versions["v1"], max_per_user=1)
    await backend.start()
    params = SamplingParams(max_new_tokens=4)
    try:
        first = backend.submit(GenerationRequest("a", params, user="u"))
        with pytest.raises(BackendError, match="in progress"):
            backend.submit(GenerationRequest("b", params, user="u"))
        first.cancel()
        with pytest.raises(BackendError, match="cancelled"):
            await asyncio.wait_for(first.result(), 10)
        assert backend.metrics()["running_requests"] == 0
        again = backend.submit(GenerationRequest("c", params, user="u"))  # the slot is free
        with pytest.raises(BackendError, match="cannot be reached"):
            await asyncio.wait_for(again.result(), 10)
    finally:
        await backend.close()
    assert backend.metrics()["cancelled"] == 1
