"""Supervising a training process: launch `python -m model.finetune` (under `accelerate launch`
when TRAIN_PROCESSES > 1), turn its JSON-line events into database rows (per-step loss,
progress) and progress callbacks, cancel it. A pid file in
the run's folder names the supervising gpt2bot process, so a run whose supervisor died (crash,
restart, kill) is known to be orphaned and can be resumed from its checkpoint.

The model side never imports storage, so the parent writes what the child reports.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage import Database, TrainingRunRepository

if TYPE_CHECKING:  # torch-heavy; the training itself runs in a child process
    from model.finetune import FinetuneJob

log = logging.getLogger(__name__)

JOB_FILE = "job.json"
SUPERVISOR_FILE = "supervisor.pid"
LOG_FILE = "train.log"
DB_FLUSH_SECONDS = 1.0  # per-step losses are written in small batches, not one row per step
REPORT_EVERY_PROGRESS = 0.1  # and reported at least every 10 %, however fast the steps are
STREAM_LIMIT = 16 * 1024 * 1024  # the final event carries samples and metrics
TERMINATE_GRACE_S = 10.0


class TrainingFailed(Exception):
    """The training process failed; the message is its reason."""


class TrainingCancelled(Exception):
    """The run was cancelled."""


@dataclass
class RunProgress:
    """What the parent knows of a run while it trains."""

    run_id: int
    progress: float = 0.0
    eta_s: float | None = None
    step: int = 0
    total: int = 0
    cancelled_by: str | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    last_flush: float = field(default_factory=time.monotonic)
    last_flushed_progress: float = 0.0


def claim_run(work_dir: Path) -> None:
    """Record this process as the supervisor of the run in `work_dir`."""
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / SUPERVISOR_FILE).write_text(str(os.getpid()))


def is_orphaned(work_dir: Path, supervised_here: bool) -> bool:
    """Whether the run in `work_dir` has no live supervisor (`supervised_here`: this process
    is supervising a run now)."""
    pid_file = work_dir / SUPERVISOR_FILE
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    return pid is None or not _alive(pid) or (pid == os.getpid() and not supervised_here)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def training_command(job_file: Path, processes: int = 1) -> list[str]:
    """The training process: `python -m model.finetune JOB`, or for several processes (GPUs)
    the same module under `accelerate launch` (torchrun: one process per GPU, or per CPU
    process group with gloo on a machine without GPUs)."""
    recipe = ["-m", "model.finetune", str(job_file)]
    if processes <= 1:
        return [sys.executable, *recipe]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    options = {
        "--num_processes": processes,
        "--num_machines": 1,
        "--mixed_precision": "no",  # the recipe asks for its own (DTYPE) in code
        "--dynamo_backend": "no",
        "--main_process_port": _free_port(),  # not torchrun's fixed 29500: two bots, one host
    }
    return [*launch, *(f"{k}={v}" for k, v in options.items()), *recipe]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def job_path(work_dir: str | Path) -> Path:
    return Path(work_dir) / JOB_FILE


def write_job(job: FinetuneJob) -> Path:
    path = job_path(job.work_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(job.to_json())
    return path


class TrainingProcess:
    """One training process for one run; `wait()` returns the final `done` event."""

    def __init__(
        self,
        db: Database,
        runs: TrainingRunRepository,
        job: FinetuneJob,
        state: RunProgress,
        on_progress: Callable[[RunProgress], Any] | None = None,
        processes: int = 1,
    ) -> None:
        self.db, self.runs, self.job, self.state = db, runs, job, state
        self.on_progress = on_progress
        self.processes = processes
        self._process: asyncio.subprocess.Process | None = None
        self.started = asyncio.Event()

    async def wait(self) -> dict[str, Any]:
        path = write_job(self.job) if not job_path(self.job.work_dir).exists() else None
        path = path or job_path(self.job.work_dir)
        with open(Path(self.job.work_dir) / LOG_FILE, "ab") as log_file:
            self._process = await asyncio.create_subprocess_exec(
                *training_command(path, self.processes),
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                limit=STREAM_LIMIT,
            )
            self.started.set()
            done, error = await self._read_events()
            code = await self._process.wait()
        await self._flush(force=True)
        if self.state.cancelled_by is not None:
            raise TrainingCancelled(f"cancelled by {self.state.cancelled_by}")
        if done is not None and code == 0:
            return done
        reason = error or f"the training process exited with status {code}"
        raise TrainingFailed(f"{reason} (details in {Path(self.job.work_dir) / LOG_FILE})")

    async def _read_events(self) -> tuple[dict[str, Any] | None, str | None]:
        assert self._process is not None and self._process.stdout is not None
        done: dict[str, Any] | None = None
        error: str | None = None
        async for line in self._process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a library printed something; only our events are JSON
            kind = event.get("event")
            if kind == "step":
                self._on_step(event)
            elif kind in ("eval", "checkpoint", "resumed"):
                self.state.pending.append(
                    {k: event[k] for k in ("event", "step", "eval_loss") if k in event}
                )
                if kind == "resumed":
                    self.state.step, self.state.total = event["step"], event["total"]
            elif kind == "done":
                done = event
            elif kind == "error":
                error = str(event.get("error"))
            await self._flush()
        return done, error

    def _on_step(self, event: dict[str, Any]) -> None:
        state = self.state
        state.step, state.total = int(event["step"]), int(event["total"])
        state.progress, state.eta_s = float(event["progress"]), float(event["eta_s"])
        state.pending.append({"step": state.step, "loss": round(float(event["loss"]), 5)})

    async def _flush(self, force: bool = False) -> None:
        state = self.state
        due = (
            force
            or time.monotonic() - state.last_flush >= DB_FLUSH_SECONDS
            or state.progress - state.last_flushed_progress >= REPORT_EVERY_PROGRESS
        )
        if not state.pending or not due:
            return
        entries, state.pending = state.pending, []
        state.last_flush, state.last_flushed_progress = time.monotonic(), state.progress
        await self.db.run(self.runs.append_losses, state.run_id, entries, state.progress)
        if self.on_progress is not None:
            try:
                result = self.on_progress(state)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # a failing progress message must not stop training
                log.exception("progress callback of run %d failed", state.run_id)

    async def cancel(self, actor: str) -> None:
        """Stop the process; its checkpoint stays, the run is recorded as cancelled."""
        self.state.cancelled_by = actor
        await self.started.wait()
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), TERMINATE_GRACE_S)
        except TimeoutError:
            process.kill()

    async def stop_for_shutdown(self) -> None:
        """Stop without cancelling: the run stays `running` and resumes at the next start."""
        process = self._process
        if process is not None and process.returncode is None:
            process.terminate()
            await process.wait()
