"""The `local` backend: the continuous-batching engine (model/engine) in this process.

`LocalBackend(config, version, path)` is the `gpt2bot.backends` entry point. It resolves the
device and dtype, loads the model in a worker thread and hands requests to the `Engine`. It
serves several versions at once (`ServesSeveralVersions`: an A/B candidate resident beside the
active version, each with its own batch in the engine).
"""

from __future__ import annotations

import logging

import torch

from model.backends.base import GenerationRequest, MetricValue
from model.config import ModelConfig
from model.device import cpu_has_fast_bf16, resolve_device
from model.engine import Engine, native
from model.engine.linear import NATIVE_INT8_ROWS
from model.engine.request import EngineHandle
from model.versions import LoadedModel, load_model

log = logging.getLogger(__name__)


def engine_dtype_name(config: ModelConfig, device: torch.device) -> str:
    """`DTYPE` when set; on CPU with DTYPE=auto, `ENGINE_CPU_DTYPE` (auto = bf16+int8 where
    the CPU has native bf16 and the native kernels can be built, bf16 where only the former,
    else fp32; "int8" = int8 weights, see `load_dtype_name`)."""
    if config.dtype != "auto" or device.type != "cpu":
        return config.dtype
    choice = config.engine.cpu_dtype
    if choice != "auto":
        return choice
    if not cpu_has_fast_bf16():
        return "fp32"
    # a lone stream by int8 weights where gpt2bot's int8 kernel can be built: on the 2-core
    # Xeon (docs/bench-generation-xeon-2026-12-07.json) single stream 82.0 against 56.5 tokens/s
    # and the burst 554 against 508
    wanted = config.engine.cpu_native_int8 and native.unavailable() is None
    return "bf16+int8" if wanted else "bf16"


def load_dtype_name(engine_dtype: str) -> str:
    """The dtype the model is loaded in for the engine's dtype: int8 weights serve over bf16
    activations where the CPU has native bf16, over fp32 elsewhere."""
    if engine_dtype == "int8":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    return engine_dtype.removesuffix("+int8")


def int8_rows_of(engine_dtype: str) -> int:
    """Rows up to which a decode step multiplies by int8 weights beside the model's own."""
    return NATIVE_INT8_ROWS if engine_dtype.endswith("+int8") else 0


class LocalBackend:
    """Serves the active model version, and any other resident ones, from this process."""

    def __init__(self, config: ModelConfig, version: str, path: str) -> None:
        self._config = config
        self._device = resolve_device(config.device)
        self._dtype = engine_dtype_name(config, self._device)
        self._version, self._path = version, path
        self.engine = Engine(
            config.engine,
            self._load,
            int8=self._dtype == "int8",
            int8_rows=int8_rows_of(self._dtype),
        )

    def _load(self, version: str, path: str) -> LoadedModel:
        dtype = load_dtype_name(self._dtype)
        return load_model(version, path, self._device, dtype, self._config.hub_timeout_s)

    @property
    def model_version(self) -> str:
        return self.engine.metrics.model_version or self._version  # the latter before start()

    async def start(self) -> None:
        await self.engine.start(self._version, self._path)

    async def close(self) -> None:
        await self.engine.close()

    def submit(self, request: GenerationRequest) -> EngineHandle:
        return self.engine.submit(request)

    def count_tokens(self, text: str) -> int:
        return len(self.engine.loaded.tokenizer.encode(text))

    def tail_tokens(self, text: str, max_tokens: int) -> str:
        tokenizer = self.engine.loaded.tokenizer
        ids = tokenizer.encode(text)
        if len(ids) <= max_tokens:
            return text
        return str(tokenizer.decode(ids[len(ids) - max_tokens :]))

    async def swap(self, version: str, path: str) -> None:
        """Serve new requests from `version`: promoted without reloading when it is resident,
        else loaded beside the old one; running requests finish on the old one."""
        await self.engine.swap(version, path)

    @property
    def resident_versions(self) -> tuple[str, ...]:
        return self.engine.resident_versions or (self._version,)  # the latter before start()

    async def load_version(self, version: str, path: str) -> None:
        """Load `version` in a worker thread beside the active one (its own batch and KV
        cache: see docs/engine.md for what that costs)."""
        await self.engine.load_version(version, path)

    async def unload_version(self, version: str) -> None:
        await self.engine.unload_version(version)

    def metrics(self) -> dict[str, MetricValue]:
        return self.engine.stats().as_dict()
