"""The `local` entry point: the engine behind the Backend Protocol, as the bot uses it."""

from __future__ import annotations

import torch

from admin.moderation.fake import FakeModerator
from bot import plugins
from bot.chat import ChatConfig, ChatService, Finished, Origin
from model.backends.base import (
    Backend,
    GenerationRequest,
    ReportsMetrics,
    SamplingParams,
    ServesSeveralVersions,
)
from model.backends.local import engine_dtype_name, load_dtype_name
from model.config import ModelConfig
from model.device import cpu_has_fast_bf16
from model.engine import EngineConfig
from storage import Database, upgrade


async def test_chat_service_generates_through_the_local_backend(model_versions, tmp_path):
    factory = plugins.load(plugins.BACKEND_GROUP, "local")
    config = ModelConfig(device="cpu", dtype="fp32", engine=EngineConfig(metrics_log_interval_s=0))
    backend = factory(config, "v1", str(model_versions["v1"]))
    assert isinstance(backend, Backend) and isinstance(backend, ReportsMetrics)
    await backend.start()
    db = Database(f"sqlite:///{tmp_path / 'bot.db'}")
    await db.run(upgrade, db.engine)
    try:
        chat = ChatService(db, backend, ChatConfig(cooldown_s=0.0), moderator=FakeModerator())
        events = [
            e
            async for e in chat.generate_stream(
                Origin("cli", "u1"), "A language model", {"samples": 2, "seed": 3}
            )
        ]
        finished = events[-1]
        assert isinstance(finished, Finished)
        assert [g.output for g in finished.generations] == finished.result.texts
        assert finished.generations[0].model_version == "v1"
        assert backend.count_tokens("A language model") == finished.result.prompt_tokens
        tail = backend.tail_tokens("one two three four", 2)
        assert "one two three four".endswith(tail) and backend.count_tokens(tail) == 2
        await backend.swap("v2", str(model_versions["v2"]))
        assert backend.model_version == "v2"
        again = await chat.generate(Origin("cli", "u1"), "A language model", {"seed": 3})
        assert again.result.model_version == "v2"
        assert backend.metrics()["completed"] == 2
    finally:
        await backend.close()
        db.dispose()


async def test_the_local_backend_serves_several_versions(model_versions):
    config = ModelConfig(device="cpu", dtype="fp32", engine=EngineConfig(metrics_log_interval_s=0))
    backend = plugins.load(plugins.BACKEND_GROUP, "local")(config, "v1", str(model_versions["v1"]))
    assert isinstance(backend, ServesSeveralVersions)
    assert backend.resident_versions == ("v1",)  # before start: the version it will serve
    await backend.start()
    params = SamplingParams(temperature=0, max_new_tokens=8)
    try:
        await backend.load_version("v2", str(model_versions["v2"]))
        assert backend.resident_versions == ("v1", "v2")
        candidate = await backend.submit(GenerationRequest("Hi", params, version="v2")).result()
        active = await backend.submit(GenerationRequest("Hi", params)).result()
        assert set(backend.metrics()["running_rows_by_version"]) == {"v1", "v2"}
        await backend.unload_version("v2")
        assert backend.resident_versions == ("v1",)
        gone = await backend.submit(GenerationRequest("Hi", params, version="v2")).result()
    finally:
        await backend.close()
    assert (candidate.model_version, active.model_version, gone.model_version) == ("v2", "v1", "v1")
    assert backend.model_version == "v1"


def test_cpu_dtype_setting():
    cpu = torch.device("cpu")
    assert engine_dtype_name(ModelConfig(dtype="fp32"), cpu) == "fp32"
    assert engine_dtype_name(ModelConfig(engine=EngineConfig(cpu_dtype="bf16")), cpu) == "bf16"
    assert engine_dtype_name(ModelConfig(engine=EngineConfig(cpu_dtype="fp32")), cpu) == "fp32"
    assert engine_dtype_name(ModelConfig(), cpu) in ("bf16+int8", "bf16", "fp32")
    assert engine_dtype_name(ModelConfig(), torch.device("cuda")) == "auto"
    int8 = ModelConfig(engine=EngineConfig(cpu_dtype="int8"))
    assert engine_dtype_name(int8, cpu) == "int8"
    assert engine_dtype_name(ModelConfig(dtype="fp32", engine=int8.engine), cpu) == "fp32"
    # int8 weights serve over bf16 activations where bf16 is native, over fp32 elsewhere
    assert load_dtype_name("int8") == ("bf16" if cpu_has_fast_bf16() else "fp32")
    assert load_dtype_name("bf16") == "bf16"


def test_auto_on_a_bf16_cpu_is_bf16_with_int8_for_few_rows_where_the_kernel_builds(monkeypatch):
    from model.backends import local
    from model.engine import native

    cpu = torch.device("cpu")
    monkeypatch.setattr(local, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(native, "unavailable", lambda: None)
    assert engine_dtype_name(ModelConfig(), cpu) == "bf16+int8"
    assert load_dtype_name("bf16+int8") == "bf16"
    off = ModelConfig(engine=EngineConfig(cpu_native_int8=False))
    assert engine_dtype_name(off, cpu) == "bf16"
    monkeypatch.setattr(native, "unavailable", lambda: "ninja is not installed")
    assert engine_dtype_name(ModelConfig(), cpu) == "bf16"
    monkeypatch.setattr(local, "cpu_has_fast_bf16", lambda: False)
    assert engine_dtype_name(ModelConfig(), cpu) == "fp32"
