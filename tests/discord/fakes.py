"""A scripted `Backend` (the documented seam) and an in-test `AdminService` (test support)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from admin.base import CuratedItem, CurationReport, ProgressCallback, TrainingRunInfo
from model.backends.base import (
    Busy,
    Cancelled,
    Chunk,
    GenerationRequest,
    GenerationResult,
    Queued,
    QueueHandle,
)
from storage import ModelVersionRecord, VersionRatingStats

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def echo(request: GenerationRequest, sample: int) -> str:
    return f" and then sample {sample} with seed {request.params.sample_seed(sample)} ended."


class ScriptedBackend:
    """Answers with `text(request, sample)`, streamed in `chunks` pieces `delay_s` apart."""

    def __init__(
        self,
        text: Callable[[GenerationRequest, int], str] = echo,
        chunks: int = 1,
        delay_s: float = 0.0,
        busy_retry_s: float | None = None,
        model_version: str = "fake-1",
        start_delay_s: float = 0.0,  # before the first event, e.g. a model still loading
        queued_at: int = 1,  # the queue position reported first
    ) -> None:
        self.start_delay_s = start_delay_s
        self.queued_at = queued_at
        self.text = text
        self.chunks = chunks
        self.delay_s = delay_s
        self.busy_retry_s = busy_retry_s
        self._version = model_version
        self.requests: list[GenerationRequest] = []
        self.cancelled: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def model_version(self) -> str:
        return self._version

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def submit(self, request: GenerationRequest) -> QueueHandle:
        if self.busy_retry_s is not None:
            raise Busy("The generator is busy right now.", retry_after_s=self.busy_retry_s)
        self.requests.append(request)
        handle = QueueHandle()
        task = asyncio.ensure_future(self._produce(request, handle))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return handle

    async def _produce(self, request: GenerationRequest, handle: QueueHandle) -> None:
        await asyncio.sleep(self.start_delay_s)
        for position in range(self.queued_at, 0, -1):
            handle.put_event(Queued(position=position))
            await asyncio.sleep(self.delay_s)
        texts = []
        for sample in range(request.params.samples):
            text = self.text(request, sample)
            size = max(1, -(-len(text) // self.chunks))
            for start in range(0, len(text), size):
                await asyncio.sleep(self.delay_s)
                if handle.cancel_requested:
                    self.cancelled.append(request.request_id)
                    handle.put_error(Cancelled("The request was cancelled."))
                    return
                handle.put_event(Chunk(sample=sample, text=text[start : start + size]))
            texts.append(text)
        handle.put_result(
            GenerationResult(
                texts=texts,
                prompt=request.prompt,
                prompt_tokens=len(request.prompt.split()),
                completion_tokens=[len(t.split()) for t in texts],
                latency_s=0.01,
                ttft_s=0.005,
                model_version=self._version,
                finish_reasons=["length"] * len(texts),
            )
        )

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def tail_tokens(self, text: str, max_tokens: int) -> str:
        words = text.split(" ")
        return " ".join(words[-max_tokens:])

    async def swap(self, version: str, path: str) -> None:
        self._version = version


def _run(status: str, progress: float = 0.0) -> TrainingRunInfo:
    return TrainingRunInfo(
        id=7,
        status=status,
        trigger="manual",
        requested_by="admin",
        progress=progress,
        eta_s=30.0 if status == "running" else None,
        dataset_size=42,
        model_version="ft-7" if status == "succeeded" else None,
        promoted=True if status == "succeeded" else None,
        eval_before={"eval_loss": 3.5},
        eval_after={"eval_loss": 3.1} if status == "succeeded" else {},
        error=None,
        created_at=datetime.now(UTC),
        finished_at=datetime.now(UTC) if status == "succeeded" else None,
    )


class RecordingAdminService:
    """Implements `admin.base.AdminService` in memory and records the calls."""

    async def close(self) -> None:
        """Nothing to release (the real service stops its scheduler here)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.progress: ProgressCallback | None = None

    async def curate_add(self, actor: str, texts: list[str]) -> CurationReport:
        self.calls.append(("curate_add", (actor, texts)))
        return CurationReport(added=len(texts))

    async def curate_add_file(self, actor: str, filename: str, content: bytes) -> CurationReport:
        self.calls.append(("curate_add_file", (actor, filename, content)))
        lines = [line for line in content.decode().splitlines() if line.strip()]
        return CurationReport(added=len(lines) - 1, skipped={"duplicates": 1})

    async def curate_list(self, limit: int = 20) -> list[CuratedItem]:
        self.calls.append(("curate_list", limit))
        return [CuratedItem(3, "a curated *sample*", "admin", "1", datetime.now(UTC), True)]

    async def curate_remove(self, actor: str, sample_id: int) -> None:
        self.calls.append(("curate_remove", (actor, sample_id)))
        if sample_id != 3:
            raise LookupError(f"There is no curated sample {sample_id}.")

    async def retrain_now(
        self, actor: str, progress: ProgressCallback | None = None
    ) -> TrainingRunInfo:
        self.calls.append(("retrain_now", actor))
        self.progress = progress
        return _run("queued")

    def report(self, status: str, progress: float) -> None:
        assert self.progress is not None
        self.progress(_run(status, progress))

    async def retrain_status(self) -> TrainingRunInfo | None:
        return _run("running", 0.5)

    async def retrain_cancel(self, actor: str) -> bool:
        self.calls.append(("retrain_cancel", actor))
        return True

    async def retrain_schedule(self, actor: str, cron: str | None) -> list[datetime]:
        self.calls.append(("retrain_schedule", (actor, cron)))
        if cron == "* * * * *":
            raise ValueError("Retraining every minute is too often: use at most hourly.")
        return [datetime(2030, 1, 6, 3, tzinfo=UTC)] if cron else []

    async def models_list(self) -> list[ModelVersionRecord]:
        self.calls.append(("models_list", None))
        created = datetime.now(UTC)
        return [
            ModelVersionRecord(
                "fake-1", None, "/m/fake-1", "bootstrap", None, {}, "retired", created, created
            ),
            ModelVersionRecord(
                "ft-7",
                "fake-1",
                "/m/ft-7",
                "bootstrap",
                7,
                {"eval_loss": 3.1},
                "active",
                created,
                created,
            ),
        ]

    async def model_use(self, actor: str, version: str, force: bool = False) -> ModelVersionRecord:
        self.calls.append(("model_use", (actor, version, force)))
        return (await self.models_list())[1]

    async def model_rollback(self, actor: str) -> ModelVersionRecord:
        self.calls.append(("model_rollback", actor))
        return (await self.models_list())[0]

    async def stats(self) -> list[VersionRatingStats]:
        self.calls.append(("stats", None))
        return [VersionRatingStats("fake-1", 10, 4, 0.5, 0.75, 3)]

    async def stats_chart(self) -> bytes:
        return PNG_SIGNATURE + b"fake chart"
