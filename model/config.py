"""Configuration of the model side (composed into `bot.settings.Settings`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from model.engine.config import EngineConfig

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPE_NAMES = ("auto", "fp32", "bf16", "fp16")


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


@dataclass(frozen=True)
class FinetuneConfig:
    """Defaults suit a few hundred short samples on a small model."""

    epochs: int = 3
    learning_rate: float = 1e-4  # small data: a gentle rate keeps what the model knew
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    batch_size: int = 8
    grad_accum: int = 1  # effective batch = batch_size * grad_accum blocks
    block_size: int = 128  # tokens per training sequence
    heldout_fraction: float = 0.1  # of the samples, at least one
    checkpoint_every: int = 50  # optimizer steps
    eval_every: int = 50  # optimizer steps (and at the end)
    early_stop_patience: int = 3  # evaluations without improvement before stopping
    max_steps: int = 0  # 0: the epochs decide
    seed: int = 1234
    device: str = "auto"
    dtype: str = "auto"  # bf16/fp16 autocast on GPU; fp32 on CPU
    sample_max_new_tokens: int = 40
    threads: int = 0  # CPU threads; 0 = one for small models, torch's default otherwise
