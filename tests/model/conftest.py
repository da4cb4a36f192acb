"""Fixtures for the engine tests: two tiny GPT-2 versions trained here once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from model.bootstrap import BootstrapConfig, build_bootstrap, bundled_corpus
from model.versions import LoadedModel, load_model

# Enough training that greedy text is fluent-ish (argmax not a coin flip), a few seconds on CPU;
# a fixed number of steps, so the weights (and the expected texts) do not depend on the load.
TINY = BootstrapConfig(
    vocab_size=400,
    n_layer=2,
    n_head=2,
    n_embd=64,
    block_size=64,
    batch_size=16,
    steps=80,
    learning_rate=3e-3,
    warmup_steps=10,
)
# the model the fine-tuning tests start from
FINETUNE_BASE = BootstrapConfig(
    vocab_size=300, n_layer=2, n_head=2, n_embd=32, n_positions=128, block_size=32, steps=20
)
EXTRA_LINES = ["Café crème, naïve façade, 日本語のテキスト and 🙂 emoji."] * 5


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny bootstrap model to fine-tune from, one per test module."""
    folder = tmp_path_factory.mktemp("finetune") / "base"
    torch.set_num_threads(1)  # tiny models: threads only wait on each other (see model.finetune)
    build_bootstrap(folder, lines=bundled_corpus()[:60], config=FINETUNE_BASE)
    return folder


@pytest.fixture(scope="session")
def model_versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    root = tmp_path_factory.mktemp("engine-models")
    lines = bundled_corpus() + EXTRA_LINES
    build_bootstrap(root / "v1", lines, TINY)
    build_bootstrap(root / "v2", lines, BootstrapConfig(**{**TINY.__dict__, "seed": 7, "steps": 5}))
    return {"v1": root / "v1", "v2": root / "v2"}


# The engine tests run on CPU; `TEST_DEVICE=cuda` runs them on a GPU (the CUDA code paths: the
# device's dtypes, `empty_cache` after an out-of-memory split, generators beside GPU logits).
TEST_DEVICE = os.environ.get("TEST_DEVICE", "cpu")


def loader(device: str = TEST_DEVICE, dtype: str = "fp32"):
    def load(version: str, path: str) -> LoadedModel:
        return load_model(version, path, torch.device(device), dtype)

    return load
