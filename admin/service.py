"""`LearningLoop`: the `AdminService` implementation. Curation, retraining, registry, schedule
and stats, for every platform and the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from admin.base import (
    AlreadyRunning,
    CuratedItem,
    CurationReport,
    ProgressCallback,
    TrainingRunInfo,
)
from admin.config import LearningConfig
from admin.curation import clean, parse_file
from admin.registry import PromotionRefused, Registry
from admin.reports import loss_curve_png, stats_chart_png
from admin.retrain import (
    RunProgress,
    TrainingCancelled,
    TrainingFailed,
    TrainingProcess,
    job_path,
)
from admin.scheduler import RetrainScheduler, parse_cron
from model.backends.base import Backend
from model.config import ModelConfig
from model.finetune import FinetuneJob
from model.versions import validate_version_name, version_dir
from storage import (
    CuratedSampleRepository,
    Database,
    GenerationRepository,
    ModelVersionRecord,
    TrainingRunRecord,
    TrainingRunRepository,
    VersionRatingStats,
)

log = logging.getLogger(__name__)

RUNS_FOLDER = ".runs"  # checkpoints and logs of training runs, under MODEL_DIR
SUPERVISOR_FILE = "supervisor.pid"
LOSS_CURVE_FILE = "loss_curve.png"


def _info(run: TrainingRunRecord, live: RunProgress | None = None) -> TrainingRunInfo:
    return TrainingRunInfo(
        id=run.id,
        status=run.status,
        trigger=run.trigger,
        requested_by=run.requested_by,
        progress=live.progress if live else run.progress,
        eta_s=live.eta_s if live else None,
        dataset_size=run.dataset_size,
        model_version=run.model_version,
        promoted=run.eval_after.get("promoted"),
        eval_before=run.eval_before,
        eval_after=run.eval_after,
        error=run.error,
        created_at=run.created_at,
        finished_at=run.finished_at,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LearningLoop:
    """Admin use-cases. `backend` is the running engine to hot-swap (None in the CLI)."""

    def __init__(
        self,
        db: Database,
        model: ModelConfig,
        config: LearningConfig,
        backend: Backend | None = None,
        retrain_cron: str | None = None,
    ) -> None:
        self.db, self.model, self.config = db, model, config
        self.samples = CuratedSampleRepository(db)
        self.runs = TrainingRunRepository(db)
        self.generations = GenerationRepository(db)
        self.registry = Registry(db, config.promote_tolerance, backend)
        self.scheduler = RetrainScheduler(db.engine, self.scheduled_retrain)
        self._retrain_cron = retrain_cron
        self._task: asyncio.Task[None] | None = None
        self._process: TrainingProcess | None = None
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, schedule: bool = True, resume: bool = True) -> None:
        """Resume runs interrupted by a crash or restart; start the retrain schedule."""
        interrupted = await self.interrupted_run() if resume else None
        if interrupted is not None:
            log.warning("resuming training run %d from its last checkpoint", interrupted.id)
            await self.resume(interrupted)
        if schedule:
            await self.scheduler.start(self._retrain_cron, self.config.min_schedule_minutes)

    async def close(self) -> None:
        """Stop the schedule; a running training stops and resumes at the next start."""
        self._closing = True
        await self.scheduler.stop()
        if self._process is not None:
            await self._process.stop_for_shutdown()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    # -- curation ----------------------------------------------------------------------------
    async def curate_add(self, actor: str, texts: list[str]) -> CurationReport:
        existing = await self.db.run(self.samples.active_texts)
        cleaned = clean(texts, existing)
        if cleaned.texts:
            await self.db.run(self.samples.add_many, cleaned.texts, actor)
        return cleaned.report()

    async def curate_add_file(self, actor: str, filename: str, content: bytes) -> CurationReport:
        texts, unreadable = parse_file(filename, content)
        report = await self.curate_add(actor, texts)
        return CurationReport(report.added, {**report.skipped, **unreadable})

    async def curate_list(self, limit: int = 20) -> list[CuratedItem]:
        await self.sync_ratings()
        return await self.db.run(self.samples.recent, limit)

    async def curate_remove(self, actor: str, sample_id: int) -> None:
        await self.db.run(self.samples.deactivate, sample_id, actor)

    async def sync_ratings(self) -> tuple[int, int]:
        """Bring rating-derived samples in line with the current ratings."""
        return await self.db.run(
            self.samples.sync_from_ratings,
            self.config.rating_min_score,
            self.config.rating_min_raters,
        )

    # -- retraining --------------------------------------------------------------------------
    def _check_idle(self) -> None:
        if self._task is not None and not self._task.done():
            progress = self._process.state.progress if self._process else 0.0
            raise AlreadyRunning(f"A training run is already running ({progress:.0%}).")

    async def interrupted_run(self) -> TrainingRunRecord | None:
        """A run marked running whose supervising process is gone (crash, restart, kill)."""
        for run in await self.db.run(self.runs.running):
            pid_file = self._work_dir(run.id) / SUPERVISOR_FILE
            pid = int(pid_file.read_text()) if pid_file.exists() else None
            if pid is None or not _alive(pid) or (pid == os.getpid() and self._task is None):
                return run
        return None

    async def retrain_now(
        self,
        actor: str,
        progress: ProgressCallback | None = None,
        *,
        trigger: str = "manual",
        include_ratings: bool = True,
        epochs: int | None = None,
    ) -> TrainingRunInfo:
        self._check_idle()
        others = await self.db.run(self.runs.running)
        interrupted = await self.interrupted_run() if others else None
        if interrupted is not None:  # finish what a crash interrupted before starting anew
            log.warning("resuming interrupted training run %d instead", interrupted.id)
            return await self.resume(interrupted, progress)
        if others:
            raise AlreadyRunning(
                f"A training run is already running ({others[0].progress:.0%}) "
                "in another gpt2bot process."
            )
        if include_ratings:
            await self.sync_ratings()
        samples = await self.db.run(self.samples.active)
        if not include_ratings:
            samples = [s for s in samples if s.source != "rating"]
        active = await self.db.run(self.registry.versions.active)
        if active is None:
            raise ValueError("no active model version to fine-tune: start the bot once first")
        if len(samples) < 2:
            raise ValueError(
                f"only {len(samples)} curated sample(s): add at least 2 with `curate add` "
                "(or rate more outputs) before retraining"
            )
        run = await self.db.run(self.runs.create, trigger, actor, "running")
        snapshot = [{"id": s.id, "source": s.source, "text": s.text} for s in samples]
        run = await self.db.run(
            self.runs.update, run.id, dataset_snapshot=snapshot, dataset_size=len(samples)
        )
        job = self._job(run.id, active, [s.text for s in samples], epochs)
        self._launch(run.id, job, progress)
        return _info(run)

    def _work_dir(self, run_id: int) -> Path:
        return Path(self.model.model_dir) / RUNS_FOLDER / f"run-{run_id}"

    def _job(
        self, run_id: int, base: ModelVersionRecord, texts: list[str], epochs: int | None
    ) -> FinetuneJob:
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M")
        name = validate_version_name(f"ft-{run_id}-{stamp}")
        finetune = self.config.finetune
        if epochs is not None:
            from dataclasses import replace

            finetune = replace(finetune, epochs=epochs)
        return FinetuneJob(
            base_path=base.path,
            base_version=base.name,
            texts=texts,
            work_dir=str(self._work_dir(run_id)),
            output_dir=str(version_dir(self.model.model_dir, name)),
            version_name=name,
            metadata={"base_model": base.base_model, "training_run_id": run_id},
            config=finetune,
        )

    async def resume(
        self, run: TrainingRunRecord, progress: ProgressCallback | None = None
    ) -> TrainingRunInfo:
        """Continue an interrupted run from its checkpoint (same job, same version name)."""
        path = job_path(self._work_dir(run.id))
        if not path.exists():
            failed = await self.db.run(
                self.runs.update, run.id, status="failed", error="interrupted before it started"
            )
            return _info(failed)
        self._launch(run.id, FinetuneJob.from_json(path.read_text()), progress)
        return _info(run)

    def _launch(self, run_id: int, job: FinetuneJob, progress: ProgressCallback | None) -> None:
        work = Path(job.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        (work / SUPERVISOR_FILE).write_text(str(os.getpid()))
        state = RunProgress(run_id)
        self._process = TrainingProcess(
            self.db, self.runs, job, state, lambda s: self._report(s.run_id, progress)
        )
        self._task = asyncio.get_running_loop().create_task(self._execute(run_id, job, progress))

    async def _report(self, run_id: int, progress: ProgressCallback | None) -> None:
        if progress is None:
            return
        run = await self.db.run(self.runs.get, run_id)
        live = self._process.state if self._process and run.status == "running" else None
        result = progress(_info(run, live))
        if asyncio.iscoroutine(result):
            await result

    async def _execute(
        self, run_id: int, job: FinetuneJob, progress: ProgressCallback | None
    ) -> None:
        assert self._process is not None
        try:
            done = await self._process.wait()
            await self._register(run_id, job, done)
        except TrainingCancelled as error:
            await self.db.run(self.runs.update, run_id, status="cancelled", error=str(error))
        except TrainingFailed as error:
            if self._closing:
                return  # shutting down: stays `running`, resumes from its checkpoint next start
            await self.db.run(self.runs.update, run_id, status="failed", error=str(error))
        except Exception as error:
            log.exception("training run %d failed", run_id)
            await self.db.run(
                self.runs.update, run_id, status="failed", error=f"internal error: {error}"
            )
        try:
            await self._report(run_id, progress)
        except Exception:
            log.exception("final progress report of run %d failed", run_id)

    async def _register(self, run_id: int, job: FinetuneJob, done: dict[str, Any]) -> None:
        """Add the new version, draw its loss curve, and promote it if the gate allows."""
        base = job.metadata.get("base_model", "")
        await self.db.run(
            self.registry.versions.add,
            job.version_name,
            job.output_dir,
            base,
            job.base_version,
            done["metrics"],
            run_id,
        )
        run = await self.db.run(self.runs.get, run_id)
        png = await asyncio.to_thread(
            loss_curve_png, run.loss_log, f"run {run_id}: {job.version_name}"
        )
        (Path(job.output_dir) / LOSS_CURVE_FILE).write_bytes(png)
        promoted, reason = False, "not promoted automatically (auto-promote is off)"
        if self.config.auto_promote:
            try:
                _, reason = await self.registry.promote(job.version_name)
                promoted = True
            except PromotionRefused as refusal:
                reason = str(refusal)
        after = {**done["after"], "promoted": promoted, "gate": reason}
        await self.db.run(
            self.runs.update,
            run_id,
            status="succeeded",
            progress=1.0,
            eval_before=done["before"],
            eval_after=after,
            model_version=job.version_name,
        )

    async def wait(self) -> TrainingRunInfo | None:
        """Wait for the current run to end; its final state."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        return await self.retrain_status()

    async def retrain_status(self) -> TrainingRunInfo | None:
        run = await self.db.run(self.runs.latest)
        if run is None:
            return None
        running = self._task is not None and not self._task.done() and self._process
        return _info(run, self._process.state if running and self._process else None)

    async def retrain_cancel(self, actor: str) -> bool:
        if self._task is None or self._task.done() or self._process is None:
            return False
        await self._process.cancel(actor)
        await asyncio.gather(self._task, return_exceptions=True)
        return True

    async def scheduled_retrain(self) -> TrainingRunInfo | None:
        """What the schedule calls: retrain, unless nothing was curated since the last run."""
        await self.sync_ratings()
        last = await self.db.run(self.runs.last_trained)
        changed = await self.db.run(self.samples.last_change)
        if last is not None and (changed is None or changed <= last.created_at):
            run = await self.db.run(self.runs.create, "schedule", "scheduler", "skipped")
            reason = f"skipped: no new curated data since run {last.id}"
            run = await self.db.run(self.runs.update, run.id, error=reason, status="skipped")
            log.info("scheduled retrain %s", reason)
            return _info(run)
        try:
            return await self.retrain_now("scheduler", trigger="schedule")
        except (AlreadyRunning, ValueError) as error:
            log.warning("scheduled retrain not started: %s", error)
            return None

    async def retrain_schedule(self, actor: str, cron: str | None) -> list[datetime]:
        trigger = None if cron is None else parse_cron(cron, self.config.min_schedule_minutes)
        return await self.scheduler.set_trigger(trigger)

    # -- registry ----------------------------------------------------------------------------
    async def models_list(self) -> list[ModelVersionRecord]:
        return await self.db.run(self.registry.versions.list)

    async def model_use(self, actor: str, version: str, force: bool = False) -> ModelVersionRecord:
        record, reason = await self.registry.promote(version, force)
        log.info("%s promoted %s: %s", actor, version, reason)
        return record

    async def model_rollback(self, actor: str) -> ModelVersionRecord:
        return await self.registry.rollback()

    # -- reports -----------------------------------------------------------------------------
    async def stats(self) -> list[VersionRatingStats]:
        return await self.db.run(self.generations.stats_by_version)

    async def stats_chart(self) -> bytes:
        return await asyncio.to_thread(stats_chart_png, await self.stats())

    async def loss_curve(self, run_id: int | None = None) -> bytes:
        """The loss-curve PNG of a run (default: the latest)."""
        run = (
            await self.db.run(self.runs.get, run_id)
            if run_id
            else await self.db.run(self.runs.latest)
        )
        if run is None:
            raise LookupError("no training run yet: `retrain now` starts one")
        title = f"run {run.id}" + (f": {run.model_version}" if run.model_version else "")
        return await asyncio.to_thread(loss_curve_png, run.loss_log, title)
