"""Configuration of the model side (composed into `bot.settings.Settings`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from model.engine.config import EngineConfig


@dataclass(frozen=True)
class ModelConfig:
    model_dir: Path = Path("./models")  # model versions live here, one folder each
    base_model: str = "gpt2"  # hub id or local folder; "bootstrap" forces the offline model
    device: str = "auto"  # auto = cuda > mps > cpu
    dtype: str = "auto"  # auto = bf16/fp16 on GPU, fp32 on CPU
    hub_timeout_s: float = 3.0  # how long to wait for the model hub before going offline
    engine: EngineConfig = field(default_factory=EngineConfig)  # the local backend's engine
