"""Prometheus metrics of one bot process (`/metrics` on the web server or on HEALTH_PORT).

Three sources, none duplicated:
- per-generation observations made where every platform's generations pass (`ChatService`
  calls `finished`, `refused` and `moderated`: the `ChatObserver` Protocol below): latency and
  time-to-first-token histograms, generations and tokens by platform and model version,
  refusals by reason, moderation actions by action and reason;
- the backend's own snapshot (`ReportsMetrics.metrics()`, e.g. the engine's queue depth,
  running rows and tokens/s), read at scrape time;
- the database, read at scrape time: ratings per model version and the training state.

Everything lives in the `Metrics` object's own `CollectorRegistry` (built by `App.open`),
never in prometheus_client's process-wide default registry, so two apps in one process (the
tests) do not share numbers. Scrape-time collectors query the database, so `exposition()` is
blocking: call it in a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from admin.follow import Follower
from model.backends.base import Backend, GenerationResult, ReportsMetrics
from storage import ACTIVE_STATUSES, Database, GenerationRepository, TrainingRunRepository

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

# seconds: a 64-token answer takes ~0.5-5 s on CPU; long ones and busy queues reach minutes
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)

# the backend snapshot's keys: (metric name, kind, help); other numeric keys become gauges
BACKEND_METRICS = {
    "queue_depth": ("gpt2bot_engine_queue_depth", "gauge", "requests waiting to be admitted"),
    "running_requests": ("gpt2bot_engine_running_requests", "gauge", "requests being decoded"),
    "running_rows": ("gpt2bot_engine_running_rows", "gauge", "rows (samples) in the batch"),
    "tokens_per_s": ("gpt2bot_engine_tokens_per_second", "gauge", "tokens/s, last 30 s"),
    "p50_latency_s": ("gpt2bot_engine_latency_p50_seconds", "gauge", "recent median latency"),
    "p95_latency_s": ("gpt2bot_engine_latency_p95_seconds", "gauge", "recent p95 latency"),
    "p50_ttft_s": ("gpt2bot_engine_ttft_p50_seconds", "gauge", "recent median first token"),
    "p95_ttft_s": ("gpt2bot_engine_ttft_p95_seconds", "gauge", "recent p95 first token"),
    "tokens_generated": ("gpt2bot_engine_tokens", "counter", "tokens generated"),
    "oom_splits": ("gpt2bot_engine_oom_splits", "counter", "batches split after GPU OOM"),
}
# numbers by version in the snapshot: a gauge with a `version` label
BACKEND_BY_VERSION = {
    "running_rows_by_version": (
        "gpt2bot_engine_running_rows_by_version",
        "rows (samples) decoding, per resident model version",
    ),
}
REQUEST_OUTCOMES = ("completed", "failed", "cancelled", "rejected")
MAX_REASON_CHARS = 80  # a moderation reason as a label value


class ChatObserver(Protocol):
    """Told about every generation of every platform (`Metrics` listens)."""

    def finished(self, platform: str, result: GenerationResult) -> None:
        """A request finished with `result`."""
        ...

    def refused(self, reason: str) -> None:
        """A request was refused before it ran (`busy`: queue or per-user limit full)."""
        ...

    def moderated(self, action: str, reason: str) -> None:
        """Moderation acted: `prompt_refused` or `output_withheld` (one per sample), with the
        verdict's reason ("contains a blocked term")."""
        ...


class Unobserved:
    """A `ChatObserver` that ignores everything (for services built without metrics)."""

    def finished(self, platform: str, result: GenerationResult) -> None:
        pass

    def refused(self, reason: str) -> None:
        pass

    def moderated(self, action: str, reason: str) -> None:
        pass


class Metrics:
    """The metrics registry of one App; `ChatService` reports each generation here."""

    def __init__(self, db: Database, backend: Backend) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "gpt2bot_generation_latency_seconds",
            "time from request to last token",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "gpt2bot_generation_ttft_seconds",
            "time from request to first token",
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        labels = ["platform", "model_version"]
        self.generations = Counter(
            "gpt2bot_generations", "generations finished", labels, registry=self.registry
        )
        self.tokens = Counter(
            "gpt2bot_completion_tokens", "tokens written", labels, registry=self.registry
        )
        self.refusals = Counter(
            "gpt2bot_refusals",
            "requests refused (busy: queue or per-user limit full)",
            ["reason"],
            registry=self.registry,
        )
        self.moderation = Counter(
            "gpt2bot_moderation_actions",
            "prompts refused and outputs withheld by moderation, by the verdict's reason",
            ["action", "reason"],
            registry=self.registry,
        )
        self.registry.register(BackendCollector(backend))
        self.registry.register(DatabaseCollector(db))

    def finished(self, platform: str, result: GenerationResult) -> None:
        self.latency.observe(result.latency_s)
        self.ttft.observe(result.ttft_s)
        self.generations.labels(platform, result.model_version).inc(len(result.texts))
        self.tokens.labels(platform, result.model_version).inc(sum(result.completion_tokens))

    def refused(self, reason: str) -> None:
        self.refusals.labels(reason).inc()

    def moderated(self, action: str, reason: str) -> None:
        # a plugin's reasons become label values: keep them a small fixed set of phrases
        self.moderation.labels(action, reason[:MAX_REASON_CHARS] or "unspecified").inc()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes. Blocking (database reads): use a thread."""
        return generate_latest(self.registry)


class BackendCollector(Collector):
    """The backend's snapshot at scrape time (the engine's own metrics, not a copy)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def collect(self) -> Iterator[Metric]:
        version = GaugeMetricFamily(
            "gpt2bot_model_info", "the model version serving new requests", labels=["version"]
        )
        version.add_metric([self.backend.model_version], 1)
        yield version
        if not isinstance(self.backend, ReportsMetrics):
            return
        snapshot = self.backend.metrics()
        outcomes = CounterMetricFamily(
            "gpt2bot_engine_requests", "requests by outcome", labels=["outcome"]
        )
        for outcome in REQUEST_OUTCOMES:
            count = snapshot.get(outcome)
            if isinstance(count, int | float):
                outcomes.add_metric([outcome], float(count))
        yield outcomes
        for key, value in snapshot.items():
            if isinstance(value, dict):
                yield _by_version(key, value)
                continue
            if key in REQUEST_OUTCOMES or isinstance(value, str | bool):
                continue
            name, kind, help_text = BACKEND_METRICS.get(
                key, (f"gpt2bot_backend_{key}", "gauge", key)
            )
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(name, help_text, value=float(value))


class FollowCollector(Collector):
    """Whether this process serves what the database says (`admin/follow.py`): the version
    it should serve, and 1 while it cannot (the log and /readyz say why). Registered by
    `App.open` beside the others."""

    def __init__(self, follower: Follower) -> None:
        self.follower = follower

    def collect(self) -> Iterator[Metric]:
        state = self.follower.state
        if state.rounds == 0:  # not following (a one-shot command) or not yet
            return
        active = GaugeMetricFamily(
            "gpt2bot_database_model_info",
            "the version the database names active, at this process's last look",
            labels=["version"],
        )
        active.add_metric([state.active or ""], 1)
        yield active
        yield GaugeMetricFamily(
            "gpt2bot_serves_database_choice",
            "1 while this process serves the database's active version (and A/B candidate)",
            value=1.0 if state.matches else 0.0,
        )
        yield GaugeMetricFamily(
            "gpt2bot_follow_failing",
            "1 while this process cannot load what the database names (it serves what it has)",
            value=1.0 if state.problem else 0.0,
        )


def _by_version(key: str, values: dict[str, int]) -> GaugeMetricFamily:
    name, help_text = BACKEND_BY_VERSION.get(key, (f"gpt2bot_backend_{key}", key))
    family = GaugeMetricFamily(name, help_text, labels=["version"])
    for version, value in values.items():
        family.add_metric([version], float(value))
    return family


class DatabaseCollector(Collector):
    """Ratings per model version and the training state, read from the database."""

    def __init__(self, db: Database) -> None:
        self.generations = GenerationRepository(db)
        self.runs = TrainingRunRepository(db)

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self.generations.stats_by_version()
            latest = self.runs.latest()
        except Exception:  # the scrape still shows the process's own numbers; /readyz says why
            log.exception("metrics: cannot read the database")
            return
        ratings = GaugeMetricFamily(
            "gpt2bot_ratings", "ratings stored, by model version", labels=["model_version", "score"]
        )
        stored = GaugeMetricFamily(
            "gpt2bot_stored_generations", "generations stored", labels=["model_version"]
        )
        for row in stats:
            up = round(row.ratings * row.positive_share)
            ratings.add_metric([row.model_version, "up"], up)
            ratings.add_metric([row.model_version, "down"], row.ratings - up)
            stored.add_metric([row.model_version], row.generations)
        yield ratings
        yield stored
        running = latest is not None and latest.status in ACTIVE_STATUSES
        yield GaugeMetricFamily(
            "gpt2bot_training_running",
            "1 while a training run is queued or running",
            value=1.0 if running else 0.0,
        )
        yield GaugeMetricFamily(
            "gpt2bot_training_progress",
            "progress of the latest run, 0 to 1",
            value=latest.progress if latest is not None else 0.0,
        )
        last = GaugeMetricFamily(
            "gpt2bot_training_last_run", "1 for the status of the latest run", labels=["status"]
        )
        finished = GaugeMetricFamily(
            "gpt2bot_training_last_finished_timestamp_seconds", "when the latest run ended"
        )
        if latest is not None:
            last.add_metric([str(latest.status)], 1.0)
            if latest.finished_at is not None:
                finished.add_metric([], latest.finished_at.timestamp())
        yield last
        yield finished
