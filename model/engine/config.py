"""Settings of the generation engine (composed into `ModelConfig`). Each field names its
environment variable; `bot/settings.py` reads them and `.env.example` documents them."""

from __future__ import annotations

from dataclasses import dataclass, field

CPU_DTYPES = ("auto", "fp32", "bf16", "int8", "bf16+int8")


@dataclass(frozen=True)
class EngineConfig:
    # rows (samples) decoded together; more = more throughput, slower steps
    max_batch: int = field(default=32, metadata={"env": "ENGINE_MAX_BATCH", "min": 1})
    # a request is queued while its estimated start (work ahead / measured tokens/s) is
    # within this; beyond it, an immediate "busy, retry in N s" (model/engine/admission.py)
    max_wait_s: float = field(default=60.0, metadata={"env": "ENGINE_MAX_WAIT_S", "min": 0})
    # memory guard: requests waiting beyond this are refused whatever the wait (a burst of
    # 1,000 short requests fits)
    max_queue: int = field(default=2048, metadata={"env": "ENGINE_MAX_QUEUE", "min": 0})
    # requests one user may have queued or running at once
    max_per_user: int = field(default=2, metadata={"env": "ENGINE_MAX_PER_USER", "min": 1})
    # a request still unfinished after this fails with a clear message
    timeout_s: float = field(default=300.0, metadata={"env": "ENGINE_TIMEOUT_S", "min": 1})
    # dtype on CPU when DTYPE=auto: "auto" = bf16+int8 where the CPU has native bf16
    # (AVX512-BF16 or AMX) and gpt2bot's native kernels can be built, bf16 where only the
    # former, else fp32; "int8" = int8 weights over bf16 (or fp32) activations; "bf16+int8" =
    # bf16, and steps of at most 4 rows (a lone member's stream) by int8 weights and gpt2bot's
    # native int8 kernel. Chosen by `gpt2bot bench generation` (docs/engine.md, "Devices and
    # dtype").
    cpu_dtype: str = field(
        default="auto", metadata={"env": "ENGINE_CPU_DTYPE", "choices": CPU_DTYPES}
    )
    # CPU, fp32 and bf16: prepack the weights for oneDNN: faster decode steps for the weights
    # held twice (timed in docs/engine.md, "Prepacked weights"); model/engine/linear.py
    cpu_prepack: bool = field(default=True, metadata={"env": "ENGINE_CPU_PREPACK"})
    # CPU, fp32 and bf16: decode attention by gpt2bot's own AVX-512 kernel, compiled on first
    # use (C++ compiler and ninja, once, cached in TORCH_EXTENSIONS_DIR); where it cannot
    # be built, torch's batched products (model/engine/native)
    cpu_native_attention: bool = field(
        default=True, metadata={"env": "ENGINE_CPU_NATIVE_ATTENTION"}
    )
    # CPU, int8 weights: steps of at most NATIVE_INT8_ROWS rows (a lone member's stream) by
    # gpt2bot's own int8 kernel, built with the attention kernel (same rules); equal to torch's
    # int8 products bit for bit, which read the weights several times slower at one row
    cpu_native_int8: bool = field(default=True, metadata={"env": "ENGINE_CPU_NATIVE_INT8"})
    # GPU: replay decode steps from CUDA graphs (model/engine/graphs.py); the KV cache is then
    # allocated at full length up front (GPT-2 124M, 32 rows: 1.2 GB in bf16)
    cuda_graphs: bool = field(default=True, metadata={"env": "ENGINE_CUDA_GRAPHS"})
    # prompt tokens prefilled per step: bounds a step's stall
    max_prefill_tokens: int = field(
        default=2048, metadata={"env": "ENGINE_MAX_PREFILL_TOKENS", "min": 1}
    )
    # adapter versions resident over one base (A/B arms, communities' own versions); loading
    # one more unloads the one least recently asked for (its running requests finish first)
    max_adapters: int = field(default=8, metadata={"env": "ENGINE_MAX_ADAPTERS", "min": 1})
    # how often the engine logs its metrics (0 = never)
    metrics_log_interval_s: float = field(
        default=60.0, metadata={"env": "ENGINE_METRICS_LOG_INTERVAL_S", "min": 0}
    )

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_queue < 0 or self.max_per_user < 1:
            raise ValueError("max_batch and max_per_user must be ≥ 1 and max_queue ≥ 0")
        if self.max_wait_s < 0:
            raise ValueError("max_wait_s must be ≥ 0")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.cpu_dtype not in CPU_DTYPES:
            raise ValueError(f"cpu_dtype must be one of {', '.join(CPU_DTYPES)}")
        if self.max_adapters < 1:
            raise ValueError("max_adapters must be ≥ 1")
        if self.max_prefill_tokens < 1:
            raise ValueError("max_prefill_tokens must be ≥ 1")
