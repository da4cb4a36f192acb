"""The `openai` backend against a real `transformers serve` on 127.0.0.1 (no mock server)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web
from transformers.utils.import_utils import is_serve_available

from admin.registry import Registry
from model.backends.base import (
    Backend,
    BackendError,
    Busy,
    Chunk,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
    ServesSeveralVersions,
)
from model.backends.openai_compat import OpenAIBackend
from model.config import ModelConfig, OpenAIConfig
from model.engine import Engine, EngineConfig
from storage import AuditRepository, ModelVersionRepository
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
def published(tmp_path_factory) -> Path:
    """OPENAI_MODEL_DIR of these tests: the server runs in it, so a version published there is
    served under its name (`transformers serve` loads the model a request names, here a folder
    relative to its working directory)."""
    return tmp_path_factory.mktemp("published")


@pytest.fixture(scope="module")
def server(published, tmp_path_factory):
    port = free_port()
    command = [str(SERVE), "serve", "--host", "127.0.0.1", "--port", str(port)]
    # A file, not a pipe: nobody reads a pipe while the tests run, and a server that fills
    # one blocks on its next log line.
    log_path = tmp_path_factory.mktemp("serve") / "stderr.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=published, stdout=subprocess.DEVNULL, stderr=log_file
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


def backend_for(url: str, path: Path, openai: object = None, **limits: object) -> OpenAIBackend:
    limits = {"timeout_s": REQUEST_TIMEOUT_S, **limits}
    server = OpenAIConfig(base_url=url, **(openai or {}))  # type: ignore[arg-type]
    config = ModelConfig(engine=EngineConfig(**limits), openai=server)  # type: ignore[arg-type]
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


async def _greedy(backend: Backend, version: str | None = None) -> GenerationResult:
    params = SamplingParams(temperature=0, max_new_tokens=12, repetition_penalty=1.0)
    return await backend.submit(GenerationRequest("A model", params, version=version)).result()


def _served_models(url: str) -> set[str]:
    with urllib.request.urlopen(f"{url}/models", timeout=10) as response:
        return {entry["id"] for entry in json.load(response)["data"]}


async def test_promotion_publishes_the_version_and_requests_name_it(
    server, published, model_versions, db, tmp_path
):
    hook_log = tmp_path / "hook.log"
    hook = tmp_path / "reload-server.sh"
    hook.write_text(f'#!/bin/sh\necho "$1 $2" >> {hook_log}\n')
    hook.chmod(0o755)
    versions = ModelVersionRepository(db)
    for name in ("v1", "v2"):
        versions.add(name=name, path=str(model_versions[name]), base_model="bootstrap")
    versions.activate("v1")
    backend = backend_for(
        server, model_versions["v1"], openai={"model_dir": published, "deploy_hook": str(hook)}
    )
    await backend.start()  # the active version is published at the first start
    try:
        registry = Registry(db, tolerance=0.0, backend=backend)
        await registry.use("admin-1", "v2", force=True)
        assert (published / "v2" / "config.json").exists()
        assert os.readlink(published / "current") == "v2"
        assert hook_log.read_text().splitlines() == [
            f"v1 {published / 'v1'}",
            f"v2 {published / 'v2'}",
        ]
        result = await _greedy(backend)
    finally:
        await backend.close()
    assert result.model_version == "v2"
    assert "v2" in _served_models(server)  # the request named the version, not its path
    engine = Engine(EngineConfig(metrics_log_interval_s=0), loader())
    await engine.start("v2", str(model_versions["v2"]))
    try:
        local = await _greedy(engine)
    finally:
        await engine.close()
    assert result.texts == local.texts


async def test_a_failing_deploy_hook_keeps_the_previous_version(
    published, model_versions, db, tmp_path
):
    hook = tmp_path / "reload-server.sh"
    hook.write_text('#!/bin/sh\n[ "$1" = v2 ] && { echo "no GPU memory left" >&2; exit 1; }\n:\n')
    hook.chmod(0o755)
    versions = ModelVersionRepository(db)
    for name in ("v1", "v2"):
        versions.add(name=name, path=str(model_versions[name]), base_model="bootstrap")
    versions.activate("v1")
    root = tmp_path / "served"
    backend = backend_for(
        f"http://127.0.0.1:{free_port()}/v1",
        model_versions["v1"],
        openai={"model_dir": root, "deploy_hook": str(hook)},
    )
    await backend.start()
    try:
        with pytest.raises(BackendError, match=r"exited with status 1.*previous version keeps"):
            await Registry(db, tolerance=0.0, backend=backend).use("admin-1", "v2", force=True)
        assert backend.model_version == "v1" and versions.active().name == "v1"  # type: ignore[union-attr]
        assert os.readlink(root / "current") == "v1"
    finally:
        await backend.close()
    audit = AuditRepository(db).recent()
    assert audit[0]["action"] == "model switch failed" and audit[0]["actor"] == "admin-1"
    assert audit[0]["detail"]["version"] == "v2"


async def test_a_second_version_is_served_beside_the_active_one(server, published, model_versions):
    backend = backend_for(server, model_versions["v1"], openai={"model_dir": published})
    await backend.start()
    try:
        assert isinstance(backend, ServesSeveralVersions)
        await backend.load_version("v2", str(model_versions["v2"]))
        assert backend.resident_versions == ("v1", "v2")
        arm = await _greedy(backend, version="v2")
        active = await _greedy(backend)
        await backend.unload_version("v2")
        assert (await _greedy(backend, version="v2")).model_version == "v1"
    finally:
        await backend.close()
    assert arm.model_version == "v2" and active.model_version == "v1"
    assert arm.texts != active.texts
    # a server that does not answer for the version: A/B is refused, the active one serves
    elsewhere = backend_for(f"http://127.0.0.1:{free_port()}/v1", model_versions["v1"])
    await elsewhere.start()
    try:
        with pytest.raises(BackendError, match="does not serve v2"):
            await elsewhere.load_version("v2", str(model_versions["v2"]))
        assert elsewhere.resident_versions == ("v1",)
    finally:
        await elsewhere.close()


async def test_a_busy_server_is_retried_then_reported_with_its_retry_after(model_versions):
    """A server (a gateway in front of vLLM) that answers 429: the SDK waits what Retry-After
    asks and tries again; once the retries are spent the user is told when to come back."""
    answers: list[str] = []
    busy_first = [1]  # how many 429s the gateway answers before it streams

    async def completions(request: web.Request) -> web.StreamResponse:
        if len(answers) < busy_first[0]:
            answers.append("429")
            return web.json_response({"error": "busy"}, status=429, headers={"Retry-After": "0.2"})
        answers.append("200")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece, reason in (("Hello", None), (" there", "length")):
            chunk = {"id": "c", "object": "text_completion", "created": 0, "model": "m"}
            chunk["choices"] = [{"index": 0, "text": piece, "finish_reason": reason}]
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/v1"
    params = SamplingParams(max_new_tokens=4)
    try:
        retried = backend_for(url, model_versions["v1"], openai={"max_retries": 2})
        await retried.start()
        result = await retried.submit(GenerationRequest("Hi", params)).result()
        await retried.close()
        assert result.texts == ["Hello there"] and answers == ["429", "200"]
        busy_first[0], answers[:] = 99, []
        busy = backend_for(url, model_versions["v1"], openai={"max_retries": 1})
        await busy.start()
        with pytest.raises(Busy, match="busy") as refusal:
            await busy.submit(GenerationRequest("Hi", params)).result()
        await busy.close()
    finally:
        await runner.cleanup()
    assert answers == ["429", "429"]  # the first try and one retry
    assert refusal.value.retry_after_s == 1.0  # the server's 0.2 s, rounded up to what we show
