"""The continuous-batching generation engine behind the `local` backend."""

from model.engine.config import EngineConfig
from model.engine.engine import Engine
from model.engine.metrics import EngineStats

__all__ = ["Engine", "EngineConfig", "EngineStats"]
