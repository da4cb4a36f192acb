"""Model versions on disk: a `save_pretrained` folder plus `metadata.json`, so a version is
self-describing (parent, base model, training run, metrics) and loads with `from_pretrained`.

A version is a full model or an adapter (`"kind": "adapter"` in its metadata): PEFT's
`save_pretrained` output (adapter_config.json, adapter_model.safetensors) over a full base
version, named by `base_version` and `base_path` (the base's path as the registry stores it).
An adapter's base is always a full version. `load_model` of an adapter loads its base, applies
the adapter and merges it, so whatever loads a version gets a plain model either way.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:  # torch and transformers load lazily: `gpt2bot models|export` stay quick
    import torch
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
ADAPTER_KIND = "adapter"  # metadata "kind" of an adapter version ("full" or absent: a full one)
VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
HUB_ENDPOINT = "https://huggingface.co"


class ModelUnavailable(Exception):
    """The model cannot be loaded from where it was asked for."""


@dataclass
class LoadedModel:
    """A model ready to generate: weights on their device, tokenizer, version name."""

    version: str
    path: str
    model: PreTrainedModel
    tokenizer: Any
    device: torch.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype


def folder_bytes(path: str | Path) -> int:
    """The size of a version's folder on disk (0 for a hub id)."""
    folder = Path(path)
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def validate_version_name(name: str) -> str:
    """Reject names that are not safe as a folder name (path traversal, spaces, …)."""
    if not VERSION_NAME.match(name) or ".." in name:
        raise ValueError(
            f"invalid model version name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def version_dir(model_dir: Path, name: str) -> Path:
    return Path(model_dir) / validate_version_name(name)


def save_version(
    folder: Path, model: PreTrainedModel, tokenizer: Any, metadata: dict[str, Any]
) -> Path:
    """Write a loadable folder atomically: a crash never leaves a half-written version."""
    folder = Path(folder)
    staging = folder.with_name(folder.name + ".partial")
    staging.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str))
    staging.rename(folder)
    return folder


def read_metadata(path: str | Path) -> dict[str, Any]:
    file = Path(path) / METADATA_FILE
    return json.loads(file.read_text()) if file.exists() else {}


@dataclass(frozen=True)
class AdapterBase:
    """The full version an adapter version adds its low-rank update to."""

    version: str
    path: str


def adapter_base(path: str | Path) -> AdapterBase | None:
    """The base of the adapter version in folder `path`; None for a full version."""
    metadata = read_metadata(path) if Path(path).is_dir() else {}
    if metadata.get("kind") != ADAPTER_KIND:
        return None
    return AdapterBase(str(metadata["base_version"]), str(metadata["base_path"]))


def hub_reachable(timeout_s: float, endpoint: str = HUB_ENDPOINT) -> bool:
    """A quick TCP check, so an offline machine does not spend a minute in download retries."""
    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname or "", url.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def load_model(
    version: str,
    path: str,
    device: torch.device,
    dtype_name: str = "auto",
    hub_timeout_s: float = 3.0,
) -> LoadedModel:
    """Load a version from a local folder or a hub id (local cache first, then the hub); an
    adapter version is its base with the adapter merged in.

    Raises `ModelUnavailable` with the reason when neither works.
    """
    from model.device import resolve_dtype

    dtype = resolve_dtype(device, dtype_name)
    started = time.perf_counter()
    base = adapter_base(path)
    if base is not None:
        model, tokenizer = _merged_adapter(version, path, base, hub_timeout_s)
        model.to(dtype)
    else:
        model, tokenizer = _full_model(path, dtype, hub_timeout_s)
    model.to(device)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    log.info(
        "loaded model %s from %s on %s (%s) in %.1fs",
        version,
        path,
        device,
        str(dtype).removeprefix("torch."),
        time.perf_counter() - started,
    )
    return LoadedModel(version=version, path=path, model=model, tokenizer=tokenizer, device=device)


def _merged_adapter(
    version: str, path: str, base: AdapterBase, hub_timeout_s: float
) -> tuple[Any, Any]:
    """The base in fp32 with the adapter's update merged into its weights (merging in fp32
    keeps the small update exact; the caller casts to the serving dtype)."""
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    try:
        full, _ = _full_model(base.path, torch.float32, hub_timeout_s)
    except ModelUnavailable as error:
        raise ModelUnavailable(f"the base {base.version} of adapter {version}: {error}") from None
    try:
        merged = PeftModel.from_pretrained(full, path).merge_and_unload()
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as error:
        raise ModelUnavailable(f"{path} is not a loadable adapter folder: {error}") from None
    return merged, tokenizer


def _full_model(path: str, dtype: torch.dtype, hub_timeout_s: float) -> tuple[Any, Any]:
    try:
        model, tokenizer = _from_pretrained(path, dtype, local_files_only=True)
    except (OSError, ValueError) as local_error:
        if Path(path).exists():
            raise ModelUnavailable(
                f"{path} is not a loadable model folder: {local_error}"
            ) from None
        if not hub_reachable(hub_timeout_s):
            raise ModelUnavailable(
                f"{path!r} is not in the local cache and the model hub is unreachable"
            ) from None
        try:
            model, tokenizer = _from_pretrained(path, dtype, local_files_only=False)
        except OSError as hub_error:
            raise ModelUnavailable(f"could not download {path!r}: {hub_error}") from None
    return model, tokenizer


def _from_pretrained(path: str, dtype: torch.dtype, local_files_only: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, local_files_only=local_files_only
    )
    return model, tokenizer


class ModelCache:
    """Keeps loaded versions so each is loaded once per process."""

    def __init__(self, device: torch.device, dtype_name: str = "auto", hub_timeout_s: float = 3.0):
        self.device = device
        self.dtype_name = dtype_name
        self.hub_timeout_s = hub_timeout_s
        self._loaded: dict[str, LoadedModel] = {}

    def get(self, version: str, path: str) -> LoadedModel:
        if version not in self._loaded:
            self._loaded[version] = load_model(
                version, path, self.device, self.dtype_name, self.hub_timeout_s
            )
        return self._loaded[version]

    def evict(self, version: str) -> None:
        """Forget a version so its memory can be released (after a hot-swap)."""
        self._loaded.pop(version, None)
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()
