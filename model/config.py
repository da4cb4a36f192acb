"""Configuration of the model side (composed into `bot.settings.Settings`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from model.engine.config import EngineConfig


@dataclass(frozen=True)
class OpenAIConfig:
    """Where the `openai` backend sends requests (any OpenAI-compatible completions server)."""

    base_url: str = "http://127.0.0.1:8000/v1"  # the server's /v1 root
    api_key: str | None = None  # sent as a bearer token when set
    model: str | None = None  # the server's model name; default: the version's path
    extra_params: bool = True  # send top_k and repetition_penalty (vLLM reads them)


@dataclass(frozen=True)
class ModelConfig:
    model_dir: Path = Path("./models")  # model versions live here, one folder each
    base_model: str = "gpt2"  # hub id or local folder; "bootstrap" forces the offline model
    device: str = "auto"  # auto = cuda > mps > cpu
    dtype: str = "auto"  # auto = bf16/fp16 on GPU, fp32 on CPU
    hub_timeout_s: float = 3.0  # how long to wait for the model hub before going offline
    backend: str = "local"  # a `gpt2bot.backends` entry point: local (this process) or openai
    engine: EngineConfig = field(default_factory=EngineConfig)  # the local backend's engine
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)  # the openai backend's server
