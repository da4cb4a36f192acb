"""Training: fine-tuning runs started now, on a schedule, cancelled, or resumed after a crash.

A run trains in its own process (`admin/supervisor.py` launches and watches it), so serving
goes on. When it succeeds, `admin/registration.py` registers the new version and the registry's
gate decides whether it is promoted; `admin/schedule_lease.py` decides which of several
processes fires the schedule.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from admin.base import ProgressCallback
from admin.config import LearningConfig
from admin.curation import Curation, PreferenceRow, dataset_snapshot
from admin.errors import AdminError, AlreadyRunning, Invalid
from admin.registration import Registration
from admin.registry import Registry
from admin.schedule_lease import ScheduleLease
from admin.scheduler import RetrainScheduler, parse_cron
from admin.supervisor import (
    RunProgress,
    TrainingCancelled,
    TrainingFailed,
    TrainingProcess,
    claim_run,
    is_orphaned,
    job_path,
)
from model.config import ModelConfig
from model.versions import validate_version_name, version_dir
from storage import (
    CuratedSampleRecord,
    Database,
    ModelVersionRecord,
    RunStatus,
    ServerSettingsRepository,
    TrainingRunRecord,
    TrainingRunRepository,
)
from storage.servers import parse_server_key

if TYPE_CHECKING:  # torch-heavy: imported when a run starts, so quick commands stay quick
    from model.finetune import FinetuneJob

log = logging.getLogger(__name__)

RUNS_FOLDER = ".runs"  # checkpoints and logs of training runs, under MODEL_DIR
MIN_SAMPLES = 2  # the held-out split needs one, training at least one more
MIN_PREFERENCES = 2  # KTO compares each batch's rows with each other: at least 2


class Training:
    """The `TrainingService`. At most one run per process; `start` refuses a second."""

    def __init__(
        self,
        db: Database,
        model: ModelConfig,
        config: LearningConfig,
        curation: Curation,
        registry: Registry,
        retrain_cron: str | None = None,
    ) -> None:
        self.db, self.model, self.config = db, model, config
        self.curation, self.registry = curation, registry
        self.runs = TrainingRunRepository(db)
        self.scheduler = RetrainScheduler(db.engine, self.scheduled_retrain)
        self._retrain_cron = retrain_cron
        self._task: asyncio.Task[None] | None = None
        self._process: TrainingProcess | None = None
        self._closing = False
        self.lease = ScheduleLease(db, config, self.scheduler, self._resume_interrupted)
        self.registration = Registration(
            db, self.runs, registry, curation.moderator, config.auto_promote
        )

    # -- lifecycle ---------------------------------------------------------------------------
    async def start_background(self) -> None:
        """Start the schedule; of several processes on one database, only the holder of the
        schedule lease fires it and resumes interrupted runs (the others stand by)."""
        await self.lease.start(self._retrain_cron)

    async def _resume_interrupted(self) -> None:
        """What the new holder of the schedule lease does first: finish a crashed run."""
        interrupted = await self.interrupted_run()
        if interrupted is not None:
            log.warning("resuming training run %d from its last checkpoint", interrupted.id)
            await self._resume(interrupted)

    async def close(self) -> None:
        self._closing = True
        await self.lease.close()
        await self.scheduler.stop()
        if self._process is not None:
            await self._process.stop_for_shutdown()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    # -- runs --------------------------------------------------------------------------------
    async def start(
        self,
        actor: str,
        progress: ProgressCallback | None = None,
        *,
        include_ratings: bool = True,
        epochs: int | None = None,
        trigger: str = "manual",
        line: str | None = None,
    ) -> TrainingRunRecord:
        """`line`: a server's model line (admin/lines.py) trains on its own data only."""
        self._check_idle()
        others = await self.db.run(self.runs.running)
        interrupted = await self.interrupted_run() if others else None
        if interrupted is not None:  # finish what a crash interrupted before starting anew
            log.warning("resuming interrupted training run %d instead", interrupted.id)
            return await self._resume(interrupted, progress)
        if others:
            raise AlreadyRunning(
                f"A training run is already running ({others[0].progress:.0%}) "
                "in another gpt2bot process."
            )
        samples = await self.curation.training_set(include_ratings, line)
        versions = self.registry.repository  # a line extends its active version, or starts one
        active = await self.db.run(versions.active, line) or await self.db.run(versions.active)
        if active is None:
            raise Invalid("There is no model version to fine-tune yet: start the bot once first.")
        if self.config.train_processes > 1 and self.config.finetune.objective != "sft":
            # the KTO stage saves and reports from every process: one process only, for now
            raise Invalid(
                "TRAIN_OBJECTIVE=kto and sft+kto train in one process: set TRAIN_PROCESSES=1."
            )
        if len(samples) < MIN_SAMPLES:
            raise Invalid(
                f"There are only {len(samples)} curated sample(s): add at least {MIN_SAMPLES} "
                f"with `{'line' if line else 'curate'} add` (or rate more outputs) before "
                "retraining."
            )
        rows = await self._preferences(samples, include_ratings, line)
        run = await self.db.run(self.runs.create, trigger, actor, RunStatus.RUNNING, line)
        snapshot = dataset_snapshot(samples, rows)
        run = await self.db.run(
            self.runs.update, run.id, dataset_snapshot=snapshot, dataset_size=len(snapshot)
        )
        job = self._job(run.id, active, [s.text for s in samples], epochs, rows, line)
        self._launch(run.id, job, progress)
        return run

    async def _preferences(
        self, samples: list[CuratedSampleRecord], include_ratings: bool, line: str | None
    ) -> list[PreferenceRow]:
        """The rated outputs a `kto` or `sft+kto` run learns from (none for `sft`)."""
        objective = self.config.finetune.objective
        if objective == "sft":
            return []
        rows = await self.curation.preference_set(samples, line) if include_ratings else []
        if len(rows) < MIN_PREFERENCES:
            raise Invalid(
                f"Only {len(rows)} rated output(s) qualify for TRAIN_OBJECTIVE={objective}: "
                f"train with ratings and have at least {MIN_PREFERENCES} outputs rated by "
                "several members, or set TRAIN_OBJECTIVE=sft."
            )
        return rows

    async def status(self) -> TrainingRunRecord | None:
        run = await self.db.run(self.runs.latest)
        return None if run is None else self._live(run)

    async def wait(self) -> TrainingRunRecord | None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        return await self.status()

    async def cancel(self, actor: str) -> bool:
        if self._task is None or self._task.done() or self._process is None:
            return False
        await self._process.cancel(actor)
        await asyncio.gather(self._task, return_exceptions=True)
        return True

    async def interrupted_run(self) -> TrainingRunRecord | None:
        """A run marked running whose supervising process is gone (crash, restart, kill)."""
        for run in await self.db.run(self.runs.running):
            if is_orphaned(self._work_dir(run.id), supervised_here=self._task is not None):
                return run
        return None

    # -- the schedule ------------------------------------------------------------------------
    async def schedule(
        self, actor: str, cron: str | None, line: str | None = None
    ) -> list[datetime]:
        """Set (None: clear) the retrain schedule of `line` (None: the shared line)."""
        trigger = None if cron is None else parse_cron(cron, self.config.min_schedule_minutes)
        log.info("%s set the retrain schedule of %s to %r", actor, line or "the shared line", cron)
        return await self.scheduler.set_trigger(trigger, line)

    async def scheduled_retrain(self, line: str | None = None) -> TrainingRunRecord | None:
        """What a schedule calls: retrain `line`, unless nothing new reached its training data
        since its last run (or, for a server's line, the owners took the line back)."""
        await self.curation.sync_ratings()
        last = await self.db.run(self.runs.last_trained, line)
        reason = None
        if line is not None and not await self._line_enabled(line):
            reason = f"skipped: {line} no longer has a model line of its own"
        elif last is not None and not await self._new_data_since(last, line):
            reason = f"skipped: no new curated data since run {last.id}"
        if reason is not None:
            run = await self.db.run(
                self.runs.create, "schedule", "scheduler", RunStatus.SKIPPED, line
            )
            run = await self.db.run(
                self.runs.update, run.id, error=reason, status=RunStatus.SKIPPED
            )
            log.info("scheduled retrain %s", reason)
            return run
        try:
            return await self.start("scheduler", trigger="schedule", line=line)
        except AdminError as error:
            log.warning("scheduled retrain of %s not started: %s", line or "shared", error)
            return None

    async def _new_data_since(self, last: TrainingRunRecord, line: str | None) -> bool:
        """The shared line: anything curated (or, for kto, rated) after its last run. A
        server's line: a text in its training set that its last run did not train on."""
        if line is None:
            ratings = self.config.finetune.objective != "sft"  # new 👎 teach the kto objectives
            return await self.curation.changed_since(last.created_at, ratings)
        trained = {item.get("id") for item in last.dataset_snapshot if "id" in item}
        samples = await self.curation.training_set(True, line)
        return any(sample.id not in trained for sample in samples)

    async def _line_enabled(self, line: str) -> bool:
        platform, server_id = parse_server_key(line)
        settings = await self.db.run(ServerSettingsRepository(self.db).get, platform, server_id)
        return settings.own_line

    # -- supervision -------------------------------------------------------------------------
    def _check_idle(self) -> None:
        if self._task is not None and not self._task.done():
            progress = self._process.state.progress if self._process else 0.0
            raise AlreadyRunning(f"A training run is already running ({progress:.0%}).")

    def _live(self, run: TrainingRunRecord) -> TrainingRunRecord:
        """`run` with this process's live progress and ETA while it trains."""
        state = self._process.state if self._process is not None else None
        running = self._task is not None and not self._task.done()
        if state is None or not running or run.id != state.run_id:
            return run
        return replace(run, progress=state.progress, eta_s=state.eta_s)

    def _work_dir(self, run_id: int) -> Path:
        return Path(self.model.model_dir) / RUNS_FOLDER / f"run-{run_id}"

    def _job(
        self,
        run_id: int,
        base: ModelVersionRecord,
        texts: list[str],
        epochs: int | None,
        rows: list[PreferenceRow],
        line: str | None = None,
    ) -> FinetuneJob:
        from model.finetune import FinetuneJob

        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M")
        name = validate_version_name(f"ft-{run_id}-{stamp}")
        finetune = self.config.finetune
        if epochs is not None:
            finetune = replace(finetune, epochs=epochs)
        if line is not None:  # a server's versions are adapters over the shared base
            finetune = replace(finetune, method="lora")
        return FinetuneJob(
            base_path=base.path,
            base_version=base.name,
            texts=texts,
            work_dir=str(self._work_dir(run_id)),
            output_dir=str(version_dir(self.model.model_dir, name)),
            version_name=name,
            metadata={"base_model": base.base_model, "training_run_id": run_id, "line": line},
            config=finetune,
            preferences=[
                {"prompt": r.prompt, "completion": r.completion, "label": r.liked} for r in rows
            ],
        )

    async def _resume(
        self, run: TrainingRunRecord, progress: ProgressCallback | None = None
    ) -> TrainingRunRecord:
        """Continue an interrupted run from its checkpoint (same job, same version name)."""
        path = job_path(self._work_dir(run.id))
        if not path.exists():
            return await self.db.run(
                self.runs.update,
                run.id,
                status=RunStatus.FAILED,
                error="interrupted before it started",
            )
        from model.finetune import FinetuneJob

        self._launch(run.id, FinetuneJob.from_json(path.read_text()), progress)
        return run

    def _launch(self, run_id: int, job: FinetuneJob, progress: ProgressCallback | None) -> None:
        claim_run(Path(job.work_dir))
        self._process = TrainingProcess(
            self.db,
            self.runs,
            job,
            RunProgress(run_id),
            lambda s: self._report(s.run_id, progress),
            processes=self.config.train_processes,
        )
        self._task = asyncio.get_running_loop().create_task(self._execute(run_id, job, progress))

    async def _report(self, run_id: int, progress: ProgressCallback | None) -> None:
        if progress is None:
            return
        result = progress(self._live(await self.db.run(self.runs.get, run_id)))
        if asyncio.iscoroutine(result):
            await result

    async def _execute(
        self, run_id: int, job: FinetuneJob, progress: ProgressCallback | None
    ) -> None:
        assert self._process is not None
        try:
            done = await self._process.wait()
            await self.registration.register(run_id, job, done)
        except TrainingCancelled as error:
            await self._finish(run_id, RunStatus.CANCELLED, str(error))
        except TrainingFailed as error:
            if self._closing:
                return  # shutting down: stays `running`, resumes from its checkpoint next start
            await self._finish(run_id, RunStatus.FAILED, str(error))
        except Exception as error:
            log.exception("training run %d failed", run_id)
            await self._finish(run_id, RunStatus.FAILED, f"internal error: {error}")
        try:
            await self._report(run_id, progress)
        except Exception:
            log.exception("final progress report of run %d failed", run_id)

    async def _finish(self, run_id: int, status: RunStatus, error: str) -> None:
        await self.db.run(self.runs.update, run_id, status=status, error=error)
