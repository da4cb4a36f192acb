"""Settings of the generation engine (composed into `ModelConfig`, read by `bot.settings`)."""

from __future__ import annotations

from dataclasses import dataclass

CPU_DTYPES = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class EngineConfig:
    max_batch: int = 32  # rows (samples) decoded together; more = more throughput, slower steps
    max_queue: int = 64  # requests waiting beyond this get an immediate "busy, retry in N s"
    max_per_user: int = 2  # requests one user may have queued or running at once
    timeout_s: float = 300.0  # a request still unfinished after this fails with a clear message
    # dtype on CPU when DTYPE=auto: "auto" = bf16 where the CPU has native bf16 (AVX512-BF16 or
    # AMX), else fp32. Measured on a 2-core AVX512-BF16 CPU: bf16 ≈ 2x fp32 (see the README).
    cpu_dtype: str = "auto"
    # CPU fp32: prepack the weights for oneDNN (engine tokens/s x1.52 on the 2-core AMD EPYC,
    # x1.13-1.18 on 2 Xeon cores; weights held twice in memory); see model/engine/linear.py
    cpu_prepack: bool = True
    # GPU: replay decode steps from CUDA graphs (model/engine/graphs.py); the KV cache is then
    # allocated at full length up front (GPT-2 124M, 32 rows: 1.2 GB in bf16)
    cuda_graphs: bool = True
    max_prefill_tokens: int = 2048  # prompt tokens prefilled per step: bounds a step's stall
    metrics_log_interval_s: float = 60.0  # how often the engine logs its metrics (0 = never)

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_queue < 0 or self.max_per_user < 1:
            raise ValueError("max_batch and max_per_user must be ≥ 1 and max_queue ≥ 0")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.cpu_dtype not in CPU_DTYPES:
            raise ValueError(f"cpu_dtype must be one of {', '.join(CPU_DTYPES)}")
        if self.max_prefill_tokens < 1:
            raise ValueError("max_prefill_tokens must be ≥ 1")
