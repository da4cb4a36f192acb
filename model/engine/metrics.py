"""Engine metrics: queue depth, batch size (also per resident version), tokens/s, latency and
time-to-first-token.

Written by the worker thread, read from anywhere (admin `stats`, the web dashboard, the log):
a lock guards the few counters and the recent-request windows.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field

from model.backends.base import MetricValue

WINDOW_REQUESTS = 1000  # percentiles over the last this many finished requests
RATE_WINDOW_S = 30.0  # tokens/s over the last this many seconds


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of the engine's metrics."""

    queue_depth: int
    running_requests: int
    running_rows: int
    tokens_per_s: float
    p50_latency_s: float
    p95_latency_s: float
    p50_ttft_s: float
    p95_ttft_s: float
    completed: int
    failed: int
    cancelled: int
    rejected: int
    tokens_generated: int
    oom_splits: int
    model_version: str
    # rows per version: every resident one (0 when idle) and any still draining after a swap
    running_rows_by_version: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, MetricValue]:
        return asdict(self)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[rank]


class EngineMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latencies: deque[float] = deque(maxlen=WINDOW_REQUESTS)
        self._ttfts: deque[float] = deque(maxlen=WINDOW_REQUESTS)
        self._token_times: deque[tuple[float, int]] = deque()
        self.counts = {
            "completed": 0,
            "failed": 0,
            "cancelled": 0,
            "rejected": 0,
            "tokens_generated": 0,
            "oom_splits": 0,
        }
        self.queue_depth = 0
        self.running_requests = 0
        self.running_rows = 0
        self.model_version = ""
        self.running_rows_by_version: dict[str, int] = {}  # replaced whole, never changed

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[name] += amount

    def tokens(self, amount: int) -> None:
        now = time.monotonic()
        with self._lock:
            self.counts["tokens_generated"] += amount
            self._token_times.append((now, amount))
            while self._token_times and self._token_times[0][0] < now - RATE_WINDOW_S:
                self._token_times.popleft()

    def finished(self, latency_s: float, ttft_s: float) -> None:
        with self._lock:
            self.counts["completed"] += 1
            self._latencies.append(latency_s)
            self._ttfts.append(ttft_s)

    def mean_latency(self) -> float:
        with self._lock:
            return sum(self._latencies) / len(self._latencies) if self._latencies else 0.0

    def snapshot(self) -> EngineStats:
        now = time.monotonic()
        with self._lock:
            recent = [(t, n) for t, n in self._token_times if t >= now - RATE_WINDOW_S]
            span = now - recent[0][0] if len(recent) > 1 else 0.0
            rate = sum(n for _, n in recent) / span if span > 0 else 0.0
            latencies, ttfts = list(self._latencies), list(self._ttfts)
            counts = dict(self.counts)
        return EngineStats(
            queue_depth=self.queue_depth,
            running_requests=self.running_requests,
            running_rows=self.running_rows,
            tokens_per_s=round(rate, 2),
            p50_latency_s=percentile(latencies, 0.5),
            p95_latency_s=percentile(latencies, 0.95),
            p50_ttft_s=percentile(ttfts, 0.5),
            p95_ttft_s=percentile(ttfts, 0.95),
            model_version=self.model_version,
            running_rows_by_version=dict(self.running_rows_by_version),
            **counts,
        )
