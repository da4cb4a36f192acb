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


@dataclass(frozen=True)
class Stacked:
    """One build of the stacks: the adapters in column order, the selectors (a row of ones in
    each adapter's columns, then a row of zeros for rows without one) and the stacks per layer
    and projection. `serial` counts builds; `after` is the serial it was built after."""

    adapters: tuple[Adapter, ...]
    slots: dict[str, int]
    selectors: torch.Tensor  # (adapters + 1, R)
    stacks: list[dict[str, LowRank]]
    serial: int
    after: int

    @property
    def none(self) -> int:
        """The selector row of a version that is not an adapter here (all zeros)."""
        return len(self.adapters)


class AdapterStack:
    """The adapters resident over one batch's base, stacked for `LoraStep` (see the module
    doc). A new adapter's stacks are built off the worker thread (`prepare`: copies and
    prepacking that would pause decoding, docs/engine.md) and swapped in by the worker
    between steps (`install`); unloading only stops selecting an adapter's columns, which stay
    in the stacks until the next build leaves them out."""

    def __init__(self, layers: int, dtype: torch.dtype, device: torch.device) -> None:
        self.layers, self.dtype, self.device = layers, dtype, device
        # the build and the versions it serves, replaced together (read from other threads)
        self._state: tuple[Stacked, frozenset[str]] = (self._build((), -1), frozenset())

    @property
    def built(self) -> Stacked:
        return self._state[0]

    @property
    def versions(self) -> tuple[str, ...]:
        """The adapter versions served, in column order."""
        built, live = self._state
        return tuple(a.version for a in built.adapters if a.version in live)

    def __contains__(self, version: object) -> bool:
        return version in self._state[1]

    def __len__(self) -> int:
        return len(self._state[1])

    def prepare(self, adapter: Adapter) -> Stacked:
        """The stacks with `adapter` added and unloaded adapters' columns left out (any thread;
        `install` refuses it when another adapter was installed meanwhile)."""
        built, live = self._state
        kept = [a for a in built.adapters if a.version in live and a.version != adapter.version]
        return self._build((*kept, adapter), built.serial)

    def install(self, prepared: Stacked, version: str) -> bool:
        """Worker thread: serve `version` from `prepared`; False, and nothing changes, when the
        stacks were rebuilt since it was prepared (prepare it again)."""
        built, live = self._state
        if prepared.after != built.serial:
            return False
        self._state = (prepared, (live & prepared.slots.keys()) | {version})
        return True

    def add(self, adapter: Adapter) -> None:
        """Prepare and install at once (before the worker runs, and in tests)."""
        if not self.install(self.prepare(adapter), adapter.version):
            raise RuntimeError("the adapter stacks changed while one was added")

    def remove(self, versions: Iterable[str]) -> None:
        built, live = self._state
        self._state = (built, live - set(versions))

    def slot(self, version: str) -> int:
        """The selector row of `version` (the row of zeros when it is not an adapter here)."""
        built, live = self._state
        return built.slots[version] if version in live else built.none

    def step(self, slots: list[int]) -> LoraStep | None:
        """What a step over rows with these slots adds (None: no row has an adapter)."""
        built = self.built
        if all(s == built.none for s in slots):
            return None
        index = torch.tensor(slots, device=self.device)
        return LoraStep(built.stacks, built.selectors[index])

    def _build(self, adapters: tuple[Adapter, ...], after: int) -> Stacked:
        slots = {a.version: i for i, a in enumerate(adapters)}
        width = sum(a.rank for a in adapters)
        selectors = torch.zeros(len(adapters) + 1, width, dtype=self.dtype, device=self.device)
        column = 0
        for i, adapter in enumerate(adapters):
            selectors[i, column : column + adapter.rank] = 1
            column += adapter.rank
        stacks = [
            {name: LowRank(*self._stacked(adapters, layer, name)) for name in PROJECTIONS}
            for layer in (range(self.layers) if adapters else ())
        ]
        return Stacked(adapters, slots, selectors, stacks, after + 1, after)

    def _stacked(
        self, adapters: tuple[Adapter, ...], layer: int, name: str
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
