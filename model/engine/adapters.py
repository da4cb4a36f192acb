"""Low-rank adapters (LoRA, as PEFT saves them) served over one resident base model.

Many adapter versions share one batch: the base weights are read once per step whatever the mix,
and each row adds its own adapter's update after each projection, never merged into the base.

How a step applies them: the adapters of a batch are stacked side by side, per layer and
projection, into `down` (in, R) and `up` (R, out) matrices, R the sum of their ranks. A step
computes `h @ down` for every row (N, R), zeroes the columns of the adapters that are not the
row's (a per-row mask, one gather per step), and adds `@ up` to the base's output (`addmm`).
Two small products and a mask per projection, the same count whatever the mix of adapters, and
no gather or sort of the rows (Punica and S-LoRA sort rows by adapter for GPUs; on a few rows
the wasted columns of the other adapters cost less than moving the rows: measured on the 2-core
Xeon, 8 adapters of rank 16 at 32 rows, sorting into groups and two batched products took 9.0
ms a step against 5.1 stacked). On CPU the stacks are prepacked for oneDNN like the base
(model/engine/linear.py), the add fused into the second product: at 32 rows (bf16, 768 x
3072, rank 128) 73 us against 129 for `mm` + `addmm`.

GPT-2's projections are transformers' `Conv1D`: PEFT stores `lora_A` (r, in) and `lora_B`
(out, r) for them as for a `Linear`, and the update of `x` is `x @ A.T @ B.T * alpha / r`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from model.engine.linear import prepack_available
from model.versions import ModelUnavailable

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# GPT-2's module path -> the engine's projection name (model/engine/linear.py BlockProjections)
TARGETS = {"attn.c_attn": "qkv", "attn.c_proj": "out", "mlp.c_fc": "up", "mlp.c_proj": "down"}
PROJECTIONS = tuple(TARGETS.values())
MODULES = "|".join(re.escape(module) for module in TARGETS)
LORA_KEY = re.compile(rf"(?:^|\.)h\.(\d+)\.({MODULES})\.lora_([AB])\.weight$")


class UnsupportedAdapter(ModelUnavailable):
    """The adapter folder is not a LoRA adapter the engine can serve (the message says why)."""


@dataclass(frozen=True)
class Adapter:
    """One adapter's weights: `parts[layer][projection] = (down (in, r), up (r, out))`, the
    scaling folded into `up`, in the base's dtype and on its device."""

    version: str
    rank: int  # the widest of its projections: its column share in a stack
    parts: tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], ...]

    def bytes(self) -> int:
        pairs = [pair for layer in self.parts for pair in layer.values()]
        return sum(t.numel() * t.element_size() for pair in pairs for t in pair)


def read_adapter(
    version: str, path: str | Path, layers: int, dtype: torch.dtype, device: torch.device
) -> Adapter:
    """Read a PEFT LoRA folder for a GPT-2 base of `layers` blocks. Raises `UnsupportedAdapter`
    for what the engine does not serve (DoRA, trained biases, extra modules, other targets)."""
    from safetensors.torch import load_file

    folder = Path(path)
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
        tensors = load_file(str(folder / ADAPTER_WEIGHTS))
    except (OSError, ValueError) as error:
        raise UnsupportedAdapter(f"{folder} is not a readable LoRA adapter: {error}") from None
    _check_config(config, folder)
    pairs: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        match = LORA_KEY.search(key)
        if match is None:
            raise UnsupportedAdapter(f"{folder}: the engine cannot serve the weight {key!r}")
        layer, module, side = int(match[1]), match[2], match[3]
        if layer >= layers:
            raise UnsupportedAdapter(f"{folder}: layer {layer} is not in a {layers}-layer base")
        pairs.setdefault((layer, TARGETS[module]), {})[side] = tensor
    parts: list[dict[str, tuple[torch.Tensor, torch.Tensor]]] = [{} for _ in range(layers)]
    for (layer, name), pair in pairs.items():
        if set(pair) != {"A", "B"}:
            raise UnsupportedAdapter(f"{folder}: layer {layer} {name} lacks lora_A or lora_B")
        down, up = pair["A"].float(), pair["B"].float()  # (r, in), (out, r)
        scaling = _scaling(config, down.shape[0], f"h.{layer}.")
        parts[layer][name] = (
            down.t().contiguous().to(device, dtype),  # (in, r)
            (up * scaling).t().contiguous().to(device, dtype),  # (r, out)
        )
    rank = max((d.shape[1] for layer in parts for d, _ in layer.values()), default=0)
    if rank == 0:
        raise UnsupportedAdapter(f"{folder}: the adapter has no LoRA weights")
    return Adapter(version, rank, tuple(parts))


def _check_config(config: dict[str, object], folder: Path) -> None:
    kind = config.get("peft_type")
    if kind != "LORA":
        raise UnsupportedAdapter(f"{folder}: a {kind} adapter, the engine serves LoRA only")
    if config.get("use_dora") or config.get("bias", "none") != "none":
        raise UnsupportedAdapter(f"{folder}: DoRA and trained biases are not served by the engine")
    if config.get("modules_to_save"):
        raise UnsupportedAdapter(f"{folder}: the adapter trains whole modules besides LoRA")


def _scaling(config: dict[str, object], rank: int, prefix: str) -> float:
    alpha = float(config.get("lora_alpha", rank))  # type: ignore[arg-type]
    patterns = config.get("alpha_pattern") or {}
    assert isinstance(patterns, dict)
    for pattern, value in patterns.items():
        if prefix in pattern or re.search(pattern, prefix):
            alpha = float(value)
    root = rank**0.5 if config.get("use_rslora") else rank
    return alpha / root


class AdapterStack:
    """The adapters resident over one batch's base, stacked for `LoraStep` (see the module
    doc). Changed by the worker thread only, between steps."""

    def __init__(self, layers: int, dtype: torch.dtype, device: torch.device) -> None:
        self.layers, self.dtype, self.device = layers, dtype, device
        self.adapters: dict[str, Adapter] = {}  # in stacking order
        self.stacks: list[dict[str, LowRank]] = []
        self.selectors = torch.zeros(1, 0, dtype=dtype, device=device)  # (slots + 1, R)
        self.slots: dict[str, int] = {}

    def __contains__(self, version: object) -> bool:
        return version in self.adapters

    def __len__(self) -> int:
        return len(self.adapters)

    def add(self, adapter: Adapter) -> None:
        self.adapters[adapter.version] = adapter
        self._restack()

    def remove(self, versions: Iterable[str]) -> None:
        gone = [v for v in versions if self.adapters.pop(v, None) is not None]
        if gone:
            self._restack()

    def slot(self, version: str) -> int:
        """The selector row of `version` (the last one, all zeros, when it is not an adapter)."""
        return self.slots.get(version, len(self.slots))

    def step(self, slots: list[int]) -> LoraStep | None:
        """What a step over rows with these slots adds (None: no row has an adapter)."""
        none = len(self.slots)
        if all(s == none for s in slots):
            return None
        index = torch.tensor(slots, device=self.device)
        return LoraStep(self.stacks, self.selectors[index])

    def _restack(self) -> None:
        """Rebuild the stacks and selectors: a few MB of copies, once per load or unload."""
        adapters = list(self.adapters.values())
        self.slots = {a.version: i for i, a in enumerate(adapters)}
        width = sum(a.rank for a in adapters)
        self.selectors = torch.zeros(len(adapters) + 1, width, dtype=self.dtype, device=self.device)
        self.stacks = []
        if not adapters:
            return
        column = 0
        for i, adapter in enumerate(adapters):
            self.selectors[i, column : column + adapter.rank] = 1
            column += adapter.rank
        for layer in range(self.layers):
            self.stacks.append(
                {name: LowRank(*self._stacked(adapters, layer, name)) for name in PROJECTIONS}
            )

    def _stacked(
        self, adapters: list[Adapter], layer: int, name: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(in, R) and (R, out) of one projection; zeros where an adapter leaves it alone or
        has a lower rank there than its widest."""
        shapes = [a.parts[layer][name] for a in adapters if name in a.parts[layer]]
        if not shapes:
            return _empty(self.dtype, self.device), _empty(self.dtype, self.device)
        width_in, width_out = shapes[0][0].shape[0], shapes[0][1].shape[1]
        downs, ups = [], []
        for adapter in adapters:
            down = torch.zeros(width_in, adapter.rank, dtype=self.dtype, device=self.device)
            up = torch.zeros(adapter.rank, width_out, dtype=self.dtype, device=self.device)
            if name in adapter.parts[layer]:
                d, u = adapter.parts[layer][name]
                down[:, : d.shape[1]] = d
                up[: u.shape[0]] = u
            downs.append(down)
            ups.append(up)
        return torch.cat(downs, dim=1), torch.cat(ups, dim=0)


def _empty(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.zeros(0, 0, dtype=dtype, device=device)


class LowRank:
    """One projection's stacked adapters: `add(x, mask, out)` is `out + ((x @ down) * mask) @
    up`, prepacked for oneDNN on CPU (fp32, bf16), plain products elsewhere."""

    def __init__(self, down: torch.Tensor, up: torch.Tensor) -> None:
        self.empty = down.numel() == 0
        on_cpu = down.device.type == "cpu" and down.dtype in (torch.float32, torch.bfloat16)
        self.packed = not self.empty and on_cpu and prepack_available()
        if self.packed:  # as `Linear` weights: (R, in) and (out, R)
            self.down = torch.ops.mkldnn._reorder_linear_weight(down.t().contiguous())
            self.up = torch.ops.mkldnn._reorder_linear_weight(up.t().contiguous())
        else:
            self.down, self.up = down, up

    def add(self, x: torch.Tensor, mask: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if self.empty:
            return out
        if not self.packed:
            return torch.addmm(out, torch.mm(x, self.down).mul_(mask), self.up)
        linear = torch.ops.mkldnn._linear_pointwise
        low = linear(x, self.down, None, "none", [], "").mul_(mask)  # (N, R)
        added: torch.Tensor = linear.binary(low, out, self.up, None, "add")
        return added


class LoraStep:
    """The adapters' part of one step (a prefill's tokens or a decode's rows): `add` puts each
    row's own adapter's update onto a projection's output."""

    def __init__(self, stacks: list[dict[str, LowRank]], mask: torch.Tensor) -> None:
        self.stacks = stacks
        self.mask = mask  # (N, R): 1 in the columns of each row's adapter

    def add(self, layer: int, name: str, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """`out` (N, out) plus the update of `x` (N, in) by each row's adapter."""
        return self.stacks[layer][name].add(x, self.mask, out)

    def rows(self, rows: slice) -> LoraStep:
        """The part for a slice of the rows (a batch split after running out of memory)."""
        return LoraStep(self.stacks, self.mask[rows])

    def repeat(self, lengths: list[int]) -> LoraStep:
        """Per token of packed prompts, from one mask row per prompt."""
        counts = torch.tensor(lengths, device=self.mask.device)
        return LoraStep(self.stacks, self.mask.repeat_interleave(counts, dim=0))
