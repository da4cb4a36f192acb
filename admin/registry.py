"""The model-version registry: the first version (`prepare_model`), the promotion gate,
atomic switch, hot-swap, rollback.

Rows live in `storage.ModelVersionRepository`, folders under `MODEL_DIR`. The serving engine
loads the new version first (it switches between decode steps); only then does one database
transaction (`activate`) mark it active, so a broken folder never becomes the active version.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from admin.errors import Invalid, PromotionRefused, Unknown, no_version
from admin.follow import FollowFailed
from model.backends.base import Backend, BackendError
from model.config import ModelConfig
from model.split import digest, trained_digests
from model.threads import to_own_thread
from model.versions import (
    adapter_base,
    hub_reachable,
    read_metadata,
    validate_version_name,
    version_dir,
)
from storage import (
    AuditRepository,
    Database,
    ExperimentRepository,
    InUse,
    ModelVersionRecord,
    ModelVersionRepository,
    NotFound,
)

if TYPE_CHECKING:  # torch-heavy: imported where used, so commands that only read stay quick
    from model.bootstrap import BootstrapConfig

log = logging.getLogger(__name__)

GATE_BLOCK_SIZE = 128
BOOTSTRAP_VERSION = "bootstrap-1"
PROGRESS_EVERY_STEPS = 50
AUTO_PROMOTE_ACTOR = "auto-promote"  # the audit's actor when training promotes a version
SYSTEM_PLATFORM = "gpt2bot"  # the audit's platform of what the bot did by itself
SWITCH_FAILED = "model switch failed"  # audited: the backend refused the new version

ProgressFn = Callable[[int, int, float], None]  # (step, total, loss) of bootstrap training


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reason: str
    candidate_loss: float | None = None
    active_loss: float | None = None


def method_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """How a version was trained (method, an adapter's rank and base, its size on disk), as a
    training run's report shows it."""
    keys = ("train_method", "lora_rank", "base_version", "size_on_disk_bytes")
    return {key: metrics[key] for key in keys if key in metrics}


def _in_use(name: str, adapters: tuple[str, ...]) -> str:
    if not adapters:
        return f"{name} is the active version: switch to another (`models use`), then remove it."
    return (
        f"{name} is the base of the adapter version(s) {', '.join(adapters)}: they load over its "
        "weights, so it cannot be removed. Remove those adapters first, or keep it."
    )


def _heldout_of(version: ModelVersionRecord) -> list[str]:
    texts = read_metadata(version.path).get("heldout_texts") or []
    return [t for t in texts if isinstance(t, str)]


class Registry:
    """The `RegistryService`: promotion, rollback and hot-swap of `backend` (the serving one,
    or for one-shot commands a backend that serves nothing)."""

    def __init__(
        self,
        db: Database,
        tolerance: float,
        backend: Backend,
        flagged_tolerance: float = 0.0,
        model_dir: Path | None = None,  # where `remove` may delete a version's folder
    ) -> None:
        self.db = db
        self.model_dir = model_dir
        self.repository = ModelVersionRepository(db)
        self.audit = AuditRepository(db)
        self.tolerance = tolerance
        self.flagged_tolerance = flagged_tolerance  # share of fixed-prompt samples
        self.backend = backend
        self._switch = asyncio.Lock()  # one switch at a time

    async def versions(self) -> list[ModelVersionRecord]:
        """The shared line's versions (a server's line: `admin.lines.Lines.status`)."""
        return await self.db.run(self.repository.in_line, None)

    async def register(
        self,
        name: str,
        path: str,
        base_model: str,
        parent: str | None,
        metrics: dict[str, Any],
        run_id: int | None,
        line: str | None = None,
    ) -> ModelVersionRecord:
        """Add a trained version (a candidate) to `line` (None: the shared line); an adapter's
        row names its full base version."""
        base = adapter_base(path)
        return await self.db.run(
            self.repository.add,
            name,
            path,
            base_model,
            parent,
            metrics,
            run_id,
            None if base is None else base.version,
            line,
        )

    async def use(self, actor: str, version: str, force: bool = False) -> ModelVersionRecord:
        record, reason = await self.promote(version, force, actor)
        log.info("%s promoted %s: %s", actor, version, reason)
        return record

    async def rollback(self, actor: str, line: str | None = None) -> ModelVersionRecord:
        """Return `line` (None: the shared line) to its previously active version."""
        async with self._switch:
            previous = await self.db.run(self.repository.previous_active, line)
            if previous is None:
                raise Unknown("There is no earlier active version to roll back to.")
            record = await self._switch_to(previous, actor)
        log.info("%s rolled back to %s", actor, previous.name)
        return record

    async def remove(self, actor: str, name: str) -> ModelVersionRecord:
        """Delete a version nothing needs: its row, and its folder when that is one of
        MODEL_DIR's. Refused (`Invalid`, saying what to do) for the active version, an arm of
        the running A/B experiment, and a base that adapter versions load over."""
        try:
            validate_version_name(name)
        except ValueError as error:
            raise Invalid(f"That is an {error}.") from None
        async with self._switch:
            running = await self.db.run(ExperimentRepository(self.db).running)
            if running is not None and name == running.candidate_version:
                raise Invalid(
                    f"{name} is the candidate of the running A/B experiment: stop it first "
                    "(`ab stop`), then remove the version."
                )
            try:
                record = await self.db.run(self.repository.remove, name)
            except NotFound:
                raise no_version(name) from None
            except InUse as error:
                raise Invalid(_in_use(name, error.dependents)) from None
        folder = Path(record.path)
        if self.model_dir is not None and folder.parent.resolve() == self.model_dir.resolve():
            await asyncio.to_thread(shutil.rmtree, folder, True)
        log.info("%s removed model version %s (%s)", actor, name, record.path)
        return record

    async def follow(self, avoid: Collection[str] = ()) -> ModelVersionRecord | None:
        """Serve what the database names active (another process or a shell command may have
        changed it). Under the switch lock, so a promotion made here (swap first, then the
        database) is never undone by a follow that read the row in between."""
        async with self._switch:
            active = await self.db.run(self.repository.active)
            if active is None or active.name == self.backend.model_version or active.name in avoid:
                return active
            try:
                await self.backend.swap(active.name, active.path)
            except Exception as error:  # a missing folder, a broken one, a hook that failed
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise FollowFailed(active.name, reason) from error
        log.info("following the database: model version %s now serves", active.name)
        return active

    async def judge(self, candidate: ModelVersionRecord) -> GateDecision:
        """Compare `candidate` with the active version of its line (a server line's first
        version: with the shared one) on the same held-out texts."""
        active = await self.db.run(self.repository.active, candidate.line)
        if active is None and candidate.line is not None:
            active = await self.db.run(self.repository.active)
        if active is None or active.name == candidate.name:
            return GateDecision(True, "no other active version to compare with")
        metrics: dict[str, Any] = candidate.metrics
        if metrics.get("baseline_version") == active.name and "eval_loss" in metrics:
            cand, act = float(metrics["eval_loss"]), float(metrics["baseline_eval_loss"])
        else:
            from model.evaluate import compare_on_heldout  # torch-heavy

            # only texts neither version trained on (a version's held-out split already
            # leaves out what its parent saw; the active one may not be its parent)
            seen = set(trained_digests(candidate.path)) | set(trained_digests(active.path))
            texts = [t for t in _heldout_of(candidate) if digest(t) not in seen] or [
                t for t in _heldout_of(active) if digest(t) not in seen
            ]
            if not texts:
                return GateDecision(True, "no held-out text that neither version trained on")
            losses = await to_own_thread(  # no OpenMP pool left behind (model/threads.py)
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
        flagged = self._flagged_verdict(metrics, active)
        if flagged is not None:
            more_flagged, why = flagged
            allowed, reason = allowed and not more_flagged, f"{reason}; {why}"
        return GateDecision(allowed, reason, cand, act)

    def _flagged_verdict(
        self, metrics: dict[str, Any], active: ModelVersionRecord
    ) -> tuple[bool, str] | None:
        """Whether the candidate's fixed-prompt samples were flagged more often than the
        active version's (measured by the training run on both, with the moderator)."""
        if metrics.get("baseline_version") != active.name or "flagged_share" not in metrics:
            return None
        cand, act = float(metrics["flagged_share"]), float(metrics["baseline_flagged_share"])
        worse = cand > act + self.flagged_tolerance
        word = "more often than" if worse else "no more often than"
        return worse, (
            f"its samples on the fixed prompts were flagged {word} the active version's "
            f"({cand:.0%} vs {act:.0%}, tolerance {self.flagged_tolerance:g})"
        )

    async def promote(
        self, name: str, force: bool = False, actor: str = AUTO_PROMOTE_ACTOR
    ) -> tuple[ModelVersionRecord, str]:
        """Make `name` active (gate unless `force`) and hot-swap it in; returns the row and
        the gate's reason. Raises `PromotionRefused` (forcible), `Unknown`, or `BackendError` when
        the backend cannot switch (then the previous version stays active)."""
        try:
            validate_version_name(name)
        except ValueError as error:
            raise Invalid(f"That is an {error}.") from None
        async with self._switch:
            candidate = await self.db.run(self.repository.get, name)
            if candidate is None:
                raise no_version(name)
            decision = await self.judge(candidate)
            if not decision.allowed and not force:
                raise PromotionRefused(f"{name} was not promoted: its {decision.reason}.")
            record = await self._switch_to(candidate, actor)
        return record, decision.reason if not force else f"forced; {decision.reason}"

    async def _switch_to(self, version: ModelVersionRecord, actor: str) -> ModelVersionRecord:
        if version.line is not None:  # a server's line: its requests name it (bot/lines.py)
            return await self.db.run(self.repository.activate, version.name)
        # load first: if the folder is broken (or the backend cannot publish it), the
        # database still names the working model
        try:
            await self.backend.swap(version.name, version.path)
        except BackendError as error:
            log.error("switching to model version %s failed: %s", version.name, error)
            detail = {"version": version.name, "error": str(error)}
            await self.db.run(
                self.audit.record, actor, SYSTEM_PLATFORM, SWITCH_FAILED, True, detail
            )
            raise
        record = await self.db.run(self.repository.activate, version.name)
        log.info("model version %s is now active", version.name)
        return record


# -- the first version ---------------------------------------------------------------------
def _name_for(base_model: str) -> str:
    return validate_version_name(re.sub(r"[^A-Za-z0-9._-]+", "-", base_model).strip("-.")[:64])


def _base_model_available(config: ModelConfig) -> bool:
    """True when `BASE_MODEL` can be loaded: a local folder, the local cache, or the hub."""
    if Path(config.base_model).is_dir():
        return True
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(config.base_model, local_files_only=True)
        return True
    except OSError:
        pass
    return hub_reachable(config.hub_timeout_s)


def _log_progress(step: int, total: int, loss: float, started: float) -> None:
    if step % PROGRESS_EVERY_STEPS == 0 or step == total:
        elapsed = time.perf_counter() - started
        eta = elapsed / step * (total - step)
        log.info(
            "bootstrap training %d%% (step %d/%d, loss %.3f, ETA %.0fs)",
            100 * step // total,
            step,
            total,
            loss,
            eta,
        )


def prepare_model(
    config: ModelConfig,
    versions: ModelVersionRepository,
    bootstrap: BootstrapConfig,
    progress: ProgressFn | None = None,
) -> ModelVersionRecord:
    """The version to serve: the active one, else the base model, else a new bootstrap model
    (trained here and registered as the first version). When the active version's folder is
    missing on this machine, the fallback serves here but the database keeps naming the active
    version (every other process serves it; this one follows once it can load it).
    Blocking: call through `db.run`."""
    active = versions.active()
    if active is not None and (Path(active.path).exists() or active.base_model == active.path):
        return active
    if active is not None:
        log.warning(
            "active model %s is missing at %s: serving another here meanwhile (the database "
            "still names %s active, for every process)",
            active.name,
            active.path,
            active.name,
        )
    first = active is None  # only a first version is activated here, never a replacement
    if config.base_model != "bootstrap":
        if _base_model_available(config):
            name = _name_for(config.base_model)
            record = versions.get(name) or versions.add(
                name=name, path=config.base_model, base_model=config.base_model
            )
            return versions.activate(name) if first else record
        log.warning(
            "BASE_MODEL %r is not in the local cache and the model hub is unreachable: "
            "falling back to the offline bootstrap model",
            config.base_model,
        )
    return _register_bootstrap(config, versions, bootstrap, progress, first)


def _register_bootstrap(
    config: ModelConfig,
    versions: ModelVersionRepository,
    bootstrap: BootstrapConfig,
    progress: ProgressFn | None,
    activate: bool,
) -> ModelVersionRecord:
    from model.bootstrap import build_bootstrap  # torch-heavy

    folder = version_dir(config.model_dir, BOOTSTRAP_VERSION)
    metrics: dict[str, float] = {}
    if not folder.exists():
        started = time.perf_counter()
        report = build_bootstrap(
            folder,
            config=bootstrap,
            progress=progress or (lambda s, t, loss: _log_progress(s, t, loss, started)),
        )
        metrics = {"train_seconds": report.seconds, "final_train_loss": report.final_loss}
    record = versions.get(BOOTSTRAP_VERSION) or versions.add(
        name=BOOTSTRAP_VERSION, path=str(folder), base_model="bootstrap", metrics=metrics
    )
    return versions.activate(BOOTSTRAP_VERSION) if activate else record
