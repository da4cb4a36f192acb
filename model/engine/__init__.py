"""The continuous-batching generation engine behind the `local` backend.

`Engine` and `EngineStats` load lazily: `model.config` imports `EngineConfig` from here, and
settings must stay importable without torch (quick `gpt2bot models|export`).
"""

from typing import Any

from model.engine.config import EngineConfig

__all__ = ["Engine", "EngineConfig", "EngineStats"]


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from model.engine.engine import Engine

        return Engine
    if name == "EngineStats":
        from model.engine.metrics import EngineStats

        return EngineStats
    raise AttributeError(name)
