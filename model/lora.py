"""`TRAIN_METHOD`: what a training run starts from and what kind of version it saves.

- `full`: every weight trains; the new version is a whole model. Started from an adapter
  version, it trains that adapter's merged model (a full version again).
- `lora`: a low-rank adapter (PEFT LoRA) on GPT-2's projections trains and the base stays
  frozen; the new version is the adapter alone (a few MB), naming its base. Started from a full
  version, a new adapter over it; started from an adapter version, that adapter goes on
  training over the same base (with its own rank): never an adapter of an adapter.

GPT-2's projections are transformers' `Conv1D` (weights stored (in, out)), so PEFT is told
`fan_in_fan_out=True`. `c_proj` names both the attention's output and the MLP's down projection.

Both objectives use this module: the SFT loop (`model/finetune.py`) trains `start.model`
directly; the KTO stage (`model/preference.py`) hands the `PeftModel` to TRL's `KTOTrainer`,
which then scores its reference with a frozen copy of the adapter (PEFT >= 0.20) instead of a
second model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from model.config import FinetuneConfig
from model.versions import ADAPTER_KIND, AdapterBase, adapter_base, load_model

TARGET_MODULES = ["c_attn", "c_proj", "c_fc"]
REFERENCE_ADAPTER = "ref"  # the frozen copy TRL's KTOTrainer adds beside "default"


@dataclass(frozen=True)
class Start:
    """The model a run trains, and for `lora` the full version its adapter applies to."""

    model: Any  # a full model, or a PeftModel whose adapter is the only trainable part
    adapter_of: AdapterBase | None  # None: the run saves a full version


def lora_config(config: FinetuneConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        task_type="CAUSAL_LM",
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(TARGET_MODULES),
        fan_in_fan_out=True,  # Conv1D
        bias="none",
    )


def full_model(path: str) -> Any:
    """The full model of the version at `path` in fp32 on the CPU (an adapter version: its base
    with the adapter merged)."""
    return load_model(path, path, torch.device("cpu"), "fp32").model


def load_start(path: str, version: str, config: FinetuneConfig) -> Start:
    """What a run that starts from the version `version` at `path` trains (`config.method`)."""
    base = adapter_base(path)
    if config.method != "lora":  # an adapter's merged model comes with PEFT's frozen weights
        return Start(full_model(path).requires_grad_(True), None)
    from peft import PeftModel, get_peft_model

    if base is None:  # a new adapter over this full version
        return Start(
            get_peft_model(full_model(path), lora_config(config)), AdapterBase(version, path)
        )
    model = PeftModel.from_pretrained(full_model(base.path), path, is_trainable=True)
    return Start(model, base)


def lineage(start: Start) -> dict[str, Any]:
    """The metadata that says what kind of version the run saves (and an adapter's base)."""
    if start.adapter_of is None:
        return {"kind": "full"}
    base = start.adapter_of
    return {"kind": ADAPTER_KIND, "base_version": base.version, "base_path": base.path}


def method_metrics(start: Start, config: FinetuneConfig) -> dict[str, Any]:
    """How the version was trained, for its metrics: method, and an adapter's rank and scale."""
    trainable = sum(p.numel() for p in start.model.parameters() if p.requires_grad)
    if start.adapter_of is None:
        return {"train_method": "full", "trainable_parameters": trainable}
    adapter = start.model.peft_config["default"]  # a continued adapter keeps its own rank
    return {
        "train_method": "lora",
        "lora_rank": adapter.r,
        "lora_alpha": adapter.lora_alpha,
        "lora_dropout": config.lora_dropout,
        "trainable_parameters": trainable,
        "base_version": start.adapter_of.version,
    }


def weights_state(model: Any) -> dict[str, torch.Tensor]:
    """What a checkpoint keeps of `model`: an adapter's weights alone (a few MB), or all."""
    if is_adapter(model):
        from peft import get_peft_model_state_dict

        return dict(get_peft_model_state_dict(model))
    return dict(model.state_dict())


def load_weights_state(model: Any, state: dict[str, torch.Tensor]) -> None:
    if is_adapter(model):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, state)
    else:
        model.load_state_dict(state)


def for_saving(model: Any) -> Any:
    """`model` as a version is saved: without the reference copy KTO added to an adapter."""
    if is_adapter(model) and REFERENCE_ADAPTER in model.peft_config:
        model.delete_adapter(REFERENCE_ADAPTER)
    return model


def is_adapter(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)
