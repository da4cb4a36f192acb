"""The model-version registry's decisions: the promotion gate, atomic switch, hot-swap, rollback.

Rows live in `storage.ModelVersionRepository`, folders under `MODEL_DIR`. The switch is one
database transaction (`activate`); the serving engine is swapped after it, between requests.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from admin.base import PromotionRefused
from model.backends.base import Backend
from model.evaluate import compare_on_heldout
from model.versions import read_metadata, validate_version_name
from storage import Database, ModelVersionRecord, ModelVersionRepository

log = logging.getLogger(__name__)

GATE_BLOCK_SIZE = 128


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reason: str
    candidate_loss: float | None = None
    active_loss: float | None = None


def _heldout_of(version: ModelVersionRecord) -> list[str]:
    texts = read_metadata(version.path).get("heldout_texts") or []
    return [t for t in texts if isinstance(t, str)]


class Registry:
    """Promotion, rollback and hot-swap; `backend` is None outside a running bot."""

    def __init__(self, db: Database, tolerance: float, backend: Backend | None = None) -> None:
        self.db = db
        self.versions = ModelVersionRepository(db)
        self.tolerance = tolerance
        self.backend = backend
        self._switch = asyncio.Lock()  # one switch at a time

    async def judge(self, candidate: ModelVersionRecord) -> GateDecision:
        """Compare `candidate` with the active version on the same held-out texts."""
        active = await self.db.run(self.versions.active)
        if active is None or active.name == candidate.name:
            return GateDecision(True, "no other active version to compare with")
        metrics: dict[str, Any] = candidate.metrics
        if metrics.get("baseline_version") == active.name and "eval_loss" in metrics:
            cand, act = float(metrics["eval_loss"]), float(metrics["baseline_eval_loss"])
        else:
            texts = _heldout_of(candidate) or _heldout_of(active)
            if not texts:
                return GateDecision(True, "neither version has held-out data to compare on")
            losses = await asyncio.to_thread(
                compare_on_heldout,
                {"candidate": candidate.path, "active": active.path},
                texts,
                GATE_BLOCK_SIZE,
            )
            cand, act = losses["candidate"], losses["active"]
        allowed = cand <= act + self.tolerance
        verdict = "not worse than" if allowed else "worse than"
        reason = (
            f"held-out loss {cand:.4f} is {verdict} the active {active.name}'s {act:.4f} "
            f"(tolerance {self.tolerance:g})"
        )
        return GateDecision(allowed, reason, cand, act)

    async def promote(self, name: str, force: bool = False) -> tuple[ModelVersionRecord, str]:
        """Make `name` active (gate unless `force`) and hot-swap it in; returns the row and
        the gate's reason. Raises `PromotionRefused` or `LookupError`."""
        validate_version_name(name)
        async with self._switch:
            candidate = await self.db.run(self.versions.get, name)
            if candidate is None:
                raise LookupError(f"there is no model version named {name!r}; see `models list`")
            decision = await self.judge(candidate)
            if not decision.allowed and not force:
                raise PromotionRefused(
                    f"{name} was not promoted: its {decision.reason}. "
                    "An admin can force it (`--force`)."
                )
            record = await self._switch_to(candidate)
        return record, decision.reason if not force else f"forced; {decision.reason}"

    async def rollback(self) -> ModelVersionRecord:
        async with self._switch:
            previous = await self.db.run(self.versions.previous_active)
            if previous is None:
                raise LookupError("there is no earlier active version to roll back to")
            return await self._switch_to(previous)

    async def _switch_to(self, version: ModelVersionRecord) -> ModelVersionRecord:
        if self.backend is not None:
            # load first: if the folder is broken, the database still names the working model
            await self.backend.swap(version.name, version.path)
        record = await self.db.run(self.versions.activate, version.name)
        log.info("model version %s is now active", version.name)
        return record
