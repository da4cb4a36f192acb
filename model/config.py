"""Configuration of the model side. Each field names its environment variable (read by the
settings reader in `bot/settings.py`; documented in `.env.example`)."""

from __future__ import annotations

import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from model.engine.config import EngineConfig

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPE_NAMES = ("auto", "fp32", "bf16", "fp16")
BACKEND_HELP = "a gpt2bot.backends entry point: local (this process) or openai"
OBJECTIVES = ("sft", "kto", "sft+kto")
METHODS = ("full", "lora")
METHOD_HELP = (
    "full: every weight trains and a version is a whole model; lora: a low-rank adapter (PEFT) "
    "over a full base version"
)
OBJECTIVE_HELP = (
    "sft: imitate curated texts; kto: preference training from rated outputs (TRL KTOTrainer); "
    "sft+kto: SFT, then KTO from its weights"
)


def check_device(device: str) -> None:
    """`cuda:1` is a device too; the kind before the colon must be known."""
    if device.split(":")[0] not in DEVICES:
        raise ValueError(f"{device!r} is not a device", f"Use one of: {', '.join(DEVICES)}.")


def check_model_dir(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file", "Point it at a folder (it is created if absent).")


def check_writable(folder: Path) -> None:
    """Where versions are saved must take new files (the bootstrap model, fine-tuned versions,
    training checkpoints); created if absent. `ValueError(problem, fix)` otherwise. Checked
    when a process prepares the model, not with the settings: `export` never writes there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(
            f"{folder} cannot be written ({error.strerror or error})",
            "Point it at a folder this user can write (model versions and training runs are "
            "saved there), or fix its permissions.",
        ) from None


def check_deploy_hook(hook: str) -> None:
    """A URL, or a command line that splits into words (balanced quotes)."""
    if hook.startswith(("http://", "https://")):
        return
    try:
        shlex.split(hook)
    except ValueError as error:
        raise ValueError(
            f"{hook!r} is not a command line ({error})",
            "Use an http(s) URL, or a command with balanced quotes.",
        ) from None


DEVICE = {"env": "DEVICE", "lower": True, "check": check_device, "help": "auto, cpu, cuda, mps"}
DTYPE = {"env": "DTYPE", "choices": DTYPE_NAMES, "help": "auto = bf16/fp16 on GPU"}
TRAIN_DTYPE = {
    "env": "TRAIN_DTYPE",
    "choices": DTYPE_NAMES,
    "help": "auto = bf16 where the hardware has it (GPU, AVX512-BF16 or AMX CPU), else fp32",
}


@dataclass(frozen=True)
class OpenAIConfig:
    """Where the `openai` backend sends requests (any OpenAI-compatible completions server)."""

    base_url: str = field(  # the server's /v1 root
        default="http://127.0.0.1:8000/v1",
        metadata={"env": "OPENAI_BASE_URL", "url_schemes": ("http", "https")},
    )
    # sent as a bearer token when set
    api_key: str | None = field(default=None, metadata={"env": "OPENAI_API_KEY"})
    # the server's model name; default: the version's path
    model: str | None = field(default=None, metadata={"env": "OPENAI_MODEL"})
    # send top_k and repetition_penalty (vLLM reads them)
    extra_params: bool = field(default=True, metadata={"env": "OPENAI_EXTRA_PARAMS"})
    # requests streaming from the server at once; more are told "busy" (the server queues
    # its own work, so this bounds only our open connections)
    max_in_flight: int = field(default=256, metadata={"env": "OPENAI_MAX_IN_FLIGHT", "min": 1})
    # retries of a request that failed before streaming (connection error, timeout, 408, 409,
    # 429, 5xx), done by the openai SDK: it waits what Retry-After asks (up to 2 min), else
    # 0.5-8 s; always within ENGINE_TIMEOUT_S. 0 = a busy server's answer reaches users at once
    max_retries: int = field(default=2, metadata={"env": "OPENAI_MAX_RETRIES", "min": 0, "max": 10})
    # a folder the server reads: the serving version is published there (copied or
    # hard-linked, atomically) and requests name it by its version name
    model_dir: Path | None = field(
        default=None, metadata={"env": "OPENAI_MODEL_DIR", "check": check_model_dir}
    )
    # run after publishing: a command (given VERSION PATH) or an http(s) URL (POSTed JSON)
    deploy_hook: str | None = field(
        default=None, metadata={"env": "OPENAI_DEPLOY_HOOK", "check": check_deploy_hook}
    )
    # the hook must succeed within this; otherwise the previous version keeps serving
    deploy_timeout_s: float = field(
        default=300.0, metadata={"env": "OPENAI_DEPLOY_TIMEOUT_S", "min": 1, "max": 3600}
    )


@dataclass(frozen=True)
class ModelConfig:
    # model versions live here, one folder each
    model_dir: Path = field(
        default=Path("./models"), metadata={"env": "MODEL_DIR", "check": check_model_dir}
    )
    # hub id or local folder; "bootstrap" forces the offline model
    base_model: str = field(default="gpt2", metadata={"env": "BASE_MODEL"})
    device: str = field(default="auto", metadata=DEVICE)  # auto = cuda > mps > cpu
    # auto = bf16/fp16 on GPU; on CPU the engine's ENGINE_CPU_DTYPE decides
    dtype: str = field(default="auto", metadata=DTYPE)
    hub_timeout_s: float = 3.0  # how long to wait for the model hub before going offline
    backend: str = field(
        default="local",
        metadata={"env": "GENERATION_BACKEND", "lower": True, "help": BACKEND_HELP},
    )
    engine: EngineConfig = field(default_factory=EngineConfig)  # the local backend's engine
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)  # the openai backend's server


@dataclass(frozen=True)
class FinetuneConfig:
    """Defaults suit a few hundred short samples on a small model."""

    # what a retrain optimises (docs/learning-loop.md); sft stays the default: it beat kto and
    # sft+kto on the loop benchmark (docs/benchmarks.md)
    objective: str = field(
        default="sft",
        metadata={
            "env": "TRAIN_OBJECTIVE",
            "lower": True,
            "choices": OBJECTIVES,
            "help": OBJECTIVE_HELP,
        },
    )
    # how a retrain changes the model (docs/learning-loop.md): full stays the default until the
    # loop benchmark compares the two
    method: str = field(
        default="full",
        metadata={"env": "TRAIN_METHOD", "lower": True, "choices": METHODS, "help": METHOD_HELP},
    )
    # LoRA: the adapter's rank, its scale (alpha / rank multiplies the update) and dropout
    lora_rank: int = field(default=16, metadata={"env": "LORA_RANK", "min": 1, "max": 1024})
    lora_alpha: int = field(default=32, metadata={"env": "LORA_ALPHA", "min": 1, "max": 4096})
    lora_dropout: float = field(
        default=0.05, metadata={"env": "LORA_DROPOUT", "min": 0, "max": 0.9}
    )

    epochs: int = field(
        default=3, metadata={"env": "TRAIN_EPOCHS", "min": 1, "max": 100, "help": "passes"}
    )
    # small data: a gentle rate keeps what the model knew
    learning_rate: float = field(
        default=1e-4, metadata={"env": "TRAIN_LEARNING_RATE", "min": 1e-7, "max": 1.0}
    )
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    batch_size: int = field(default=8, metadata={"env": "TRAIN_BATCH_SIZE", "min": 1, "max": 512})
    # effective batch = batch_size * grad_accum blocks
    grad_accum: int = field(default=1, metadata={"env": "TRAIN_GRAD_ACCUM", "min": 1, "max": 512})
    # tokens per training sequence
    block_size: int = field(
        default=128, metadata={"env": "TRAIN_BLOCK_SIZE", "min": 16, "max": 1024}
    )
    heldout_fraction: float = 0.1  # of the samples, at least one
    # optimizer steps between checkpoints
    checkpoint_every: int = field(
        default=50, metadata={"env": "TRAIN_CHECKPOINT_EVERY", "min": 1, "max": 1e6}
    )
    eval_every: int = 50  # optimizer steps (and at the end)
    early_stop_patience: int = 3  # evaluations without improvement before stopping
    max_steps: int = 0  # 0: the epochs decide
    seed: int = 1234
    device: str = field(default="auto", metadata=DEVICE)  # the same DEVICE as serving
    # the precision training computes in (autocast; weights and optimizer state stay fp32):
    # auto = bf16 on GPUs and on CPUs with native bf16, fp16 on older GPUs, fp32 elsewhere
    dtype: str = field(default="auto", metadata=TRAIN_DTYPE)
    sample_max_new_tokens: int = 40
    # KTO (preference) stage: how far the model may move from its reference (higher: less)
    kto_beta: float = field(default=0.1, metadata={"env": "KTO_BETA", "min": 0.001, "max": 100})
    # passes over the rated outputs (each step also scores the reference model: ~3x an SFT step)
    kto_epochs: int = field(default=2, metadata={"env": "KTO_EPOCHS", "min": 1, "max": 100})
    # preference training moves a model further per step than SFT does: a tenth of its rate
    kto_learning_rate: float = field(
        default=1e-5, metadata={"env": "KTO_LEARNING_RATE", "min": 1e-8, "max": 1.0}
    )
    threads: int = 0  # CPU threads; 0 = one for small models, torch's default otherwise
