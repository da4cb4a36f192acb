"""Reports: ratings per model version and training-run loss curves, as numbers and charts."""

from __future__ import annotations

import asyncio

from admin.charts import loss_curve_png, stats_chart_png
from admin.errors import Unknown
from storage import (
    Database,
    GenerationRepository,
    NotFound,
    TrainingRunRecord,
    TrainingRunRepository,
    VersionRatingStats,
)


class Reports:
    """The `ReportService`, read from the database; charts drawn off the event loop."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.generations = GenerationRepository(db)
        self.runs = TrainingRunRepository(db)

    async def stats(self) -> list[VersionRatingStats]:
        return await self.db.run(self.generations.stats_by_version)

    async def stats_chart(self) -> bytes:
        return await asyncio.to_thread(stats_chart_png, await self.stats())

    async def loss_curve(self, run_id: int | None = None) -> bytes:
        run: TrainingRunRecord | None
        if run_id:
            try:
                run = await self.db.run(self.runs.get, run_id)
            except NotFound:
                raise Unknown(f"There is no training run #{run_id}.") from None
        else:
            run = await self.db.run(self.runs.latest)
        if run is None:
            raise Unknown("There is no training run yet: `retrain now` starts one.")
        title = f"run {run.id}" + (f": {run.model_version}" if run.model_version else "")
        return await asyncio.to_thread(loss_curve_png, run.loss_log, title)
