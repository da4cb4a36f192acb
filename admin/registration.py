"""Registration of a finished training run: the new version is added to the registry, its loss
curve drawn beside it, its fixed-prompt samples screened by the moderator, and the registry's
gate decides whether it is promoted (and hot-swapped into the running engine).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from admin.charts import loss_curve_png
from admin.errors import PromotionRefused
from admin.moderation import Moderator
from admin.registry import Registry, method_summary
from model.backends.base import BackendError
from storage import Database, RunStatus, TrainingRunRepository

if TYPE_CHECKING:  # torch-heavy: imported when a run starts, so quick commands stay quick
    from model.finetune import FinetuneJob

LOSS_CURVE_FILE = "loss_curve.png"


class Registration:
    """Turns a run's result into a registered (and, with `auto_promote`, promoted) version."""

    def __init__(
        self,
        db: Database,
        runs: TrainingRunRepository,
        registry: Registry,
        moderator: Moderator,
        auto_promote: bool,
    ) -> None:
        self.db, self.runs, self.registry = db, runs, registry
        self.moderator, self.auto_promote = moderator, auto_promote

    async def register(self, run_id: int, job: FinetuneJob, done: dict[str, Any]) -> None:
        """Add the new version, draw its loss curve, and promote it if the gate allows."""
        metrics = {
            **done["metrics"],
            "flagged_share": await self._flagged_share(done["after"]),
            "baseline_flagged_share": await self._flagged_share(done["before"]),
        }
        base_model = job.metadata.get("base_model", "")
        line = job.metadata.get("line")  # a server's model line (admin/lines.py), or None
        await self.registry.register(
            job.version_name, job.output_dir, base_model, job.base_version, metrics, run_id, line
        )
        run = await self.db.run(self.runs.get, run_id)
        title = f"run {run_id}: {job.version_name}"
        png = await asyncio.to_thread(loss_curve_png, run.loss_log, title)
        (Path(job.output_dir) / LOSS_CURVE_FILE).write_bytes(png)
        promoted, reason = False, "not promoted automatically (auto-promote is off)"
        if self.auto_promote:
            try:
                _, reason = await self.registry.promote(job.version_name)
                promoted = True
            except (PromotionRefused, BackendError) as refusal:  # not promoted; still trained
                reason = str(refusal)
        await self.db.run(
            self.runs.update,
            run_id,
            status=RunStatus.SUCCEEDED,
            progress=1.0,
            eval_before=done["before"],
            eval_after={
                **done["after"],
                "promoted": promoted,
                "gate": reason,
                **method_summary(metrics),
            },
            model_version=job.version_name,
        )

    async def _flagged_share(self, evaluation: dict[str, Any]) -> float:
        """The share of a version's fixed-prompt samples that the moderator flags."""
        samples = [s.get("output", "") for s in evaluation.get("samples", [])]
        if not samples:
            return 0.0
        checks = [await self.moderator.check(text) for text in samples]
        return sum(1 for verdict in checks if verdict.flagged) / len(samples)
