"""Test doubles for the two seams the Slack tests don't exercise for real."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from admin.base import CuratedItem, CurationReport, TrainingRunInfo
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

WORDS = (" there", " was", " a", " small", " bot", " that", " wrote", " stories", ".", " The")


class ScriptedBackend:
    """A `Backend` that streams known words with a delay: output and timing are predictable."""

    def __init__(self, delay_s: float = 0.02, words: tuple[str, ...] = WORDS) -> None:
        self.delay_s = delay_s
        self.words = words
        self.busy = False
        self.requests: list[GenerationRequest] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def model_version(self) -> str:
        return "fake-1"

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()

    def submit(self, request: GenerationRequest) -> QueueHandle:
        if self.busy:
            raise Busy("The bot is busy right now: please retry in 5 seconds.", 5)
        self.requests.append(request)
        handle = QueueHandle()
        task = asyncio.get_running_loop().create_task(self._produce(request, handle))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return handle

    async def _produce(self, request: GenerationRequest, handle: QueueHandle) -> None:
        started = time.perf_counter()
        handle.put_event(Queued(position=1))
        count = min(request.params.max_new_tokens, len(self.words))
        texts = []
        for sample in range(request.params.samples):
            for word in self.words[:count]:
                await asyncio.sleep(self.delay_s)
                if handle.cancel_requested:
                    handle.put_error(Cancelled("The request was cancelled."))
                    return
                handle.put_event(Chunk(sample=sample, text=word))
            texts.append("".join(self.words[:count]))
        handle.put_result(
            GenerationResult(
                texts=texts,
                prompt=request.prompt,
                prompt_tokens=self.count_tokens(request.prompt),
                completion_tokens=[count] * len(texts),
                latency_s=time.perf_counter() - started,
                ttft_s=self.delay_s,
                model_version=self.model_version,
                finish_reasons=["length"] * len(texts),
            )
        )

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def tail_tokens(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split()[-max_tokens:])

    async def swap(self, version: str, path: str) -> None:
        pass


NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class RecordingAdmin:
    """An in-test `AdminService`: remembers calls, answers like the real one would."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    chart: bytes = b"\x89PNG\r\n\x1a\nfake-chart"

    async def close(self) -> None:
        """Nothing to release (the real service stops its scheduler here)."""

    async def curate_add(self, actor: str, texts: list[str]) -> CurationReport:
        self.calls.append(("curate_add", (actor, texts)))
        return CurationReport(added=len(texts))

    async def curate_add_file(self, actor: str, filename: str, content: bytes) -> CurationReport:
        self.calls.append(("curate_add_file", (actor, filename)))
        return CurationReport(added=1)

    async def curate_list(self, limit: int = 20) -> list[CuratedItem]:
        self.calls.append(("curate_list", limit))
        return [CuratedItem(7, "A fine <example>", "admin", "UADMIN", NOW, True)]

    async def curate_remove(self, actor: str, sample_id: int) -> None:
        self.calls.append(("curate_remove", (actor, sample_id)))
        if sample_id != 7:
            raise LookupError(f"There is no curated sample #{sample_id}.")

    async def retrain_now(self, actor: str, progress: Any = None) -> TrainingRunInfo:
        self.calls.append(("retrain_now", actor))
        run = _run("running")
        if progress is not None:  # the real service reports from the background
            asyncio.get_running_loop().call_later(0.05, progress, _run("succeeded"))
        return run

    async def retrain_status(self) -> TrainingRunInfo | None:
        return _run("running")

    async def retrain_cancel(self, actor: str) -> bool:
        self.calls.append(("retrain_cancel", actor))
        return False

    async def retrain_schedule(self, actor: str, cron: str | None) -> list[datetime]:
        self.calls.append(("retrain_schedule", (actor, cron)))
        if cron == "* * * * *":
            raise ValueError("Retraining every minute is too often: use at most hourly.")
        return [NOW, NOW, NOW] if cron else []

    async def models_list(self) -> list[ModelVersionRecord]:
        return [
            ModelVersionRecord(
                "fake-1", None, "/m", "gpt2", None, {"eval_loss": 3.5}, "active", NOW, NOW
            )
        ]

    async def model_use(self, actor: str, version: str, force: bool = False) -> ModelVersionRecord:
        self.calls.append(("model_use", (actor, version, force)))
        if version != "fake-1":
            raise LookupError(f"There is no model version {version!r}.")
        return (await self.models_list())[0]

    async def model_rollback(self, actor: str) -> ModelVersionRecord:
        return (await self.models_list())[0]

    async def stats(self) -> list[VersionRatingStats]:
        self.calls.append(("stats", None))
        return [VersionRatingStats("fake-1", 10, 4, 0.5, 0.75, 3)]

    async def stats_chart(self) -> bytes:
        return self.chart


def _run(status: str) -> TrainingRunInfo:
    return TrainingRunInfo(
        id=3,
        status=status,
        trigger="manual",
        requested_by="UADMIN",
        progress=0.5,
        eta_s=30.0,
        dataset_size=120,
        model_version="v3" if status == "succeeded" else None,
        promoted=status == "succeeded",
        eval_before={"eval_loss": 3.2},
        eval_after={"eval_loss": 3.0} if status == "succeeded" else {},
        error=None,
        created_at=NOW,
        finished_at=None,
    )
