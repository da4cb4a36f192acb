"""What `gpt2bot status`, the dashboard and the admin commands show of the fleet: the
database's choice (active version, A/B candidate) and each live serving process."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ProcessStatus:
    """One live `gpt2bot run` process, as `gpt2bot status` and the dashboard show it."""

    id: str
    host: str
    pid: int
    platform: str
    shards: str
    served_version: str
    candidate_version: str | None  # the A/B candidate it keeps resident
    problem: str | None  # why it does not serve what the database says (its own words)
    started_at: datetime
    last_seen: datetime
    # what it serves differs from the database's choice, for longer than its bound
    lagging: bool

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        return {
            **values,
            "started_at": self.started_at.isoformat(),
            "last_seen": self.last_seen.isoformat(),
        }


@dataclass(frozen=True)
class FleetView:
    """What the database says every process should serve, and what the live ones serve."""

    active: str | None  # the active version
    candidate: str | None  # the running A/B experiment's candidate (kept resident), or None
    processes: tuple[ProcessStatus, ...]
    bound_s: float  # FOLLOW_INTERVAL_S of this process: how soon the others notice

    def serves_it(self, process: ProcessStatus) -> bool:
        return (process.served_version, process.candidate_version) == (self.active, self.candidate)

    @property
    def behind(self) -> tuple[ProcessStatus, ...]:
        """Live processes that do not serve the database's choice (yet)."""
        return tuple(p for p in self.processes if not self.serves_it(p))

    def summary(self) -> str:
        """How the fleet stands, in one sentence: "2 live processes: 1 serves it, 1 follows
        within 5 s"."""
        total = len(self.processes)
        if total == 0:
            return (
                "No `gpt2bot run` process is live on this database; each serves it when it starts."
            )
        behind = self.behind
        noun = "process" if total == 1 else "processes"
        if not behind:
            return f"{total} live {noun}: all serve it."
        lagging = [p for p in behind if p.lagging]
        parts = [f"{total - len(behind)} serve it"] if len(behind) < total else []
        if len(behind) > len(lagging):
            parts.append(f"{len(behind) - len(lagging)} will follow within {self.bound_s:g} s")
        parts += [f"{p.host}:{p.pid} lags ({p.problem or 'no reason given yet'})" for p in lagging]
        return f"{total} live {noun}: " + ", ".join(parts) + "."

    def to_dict(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "candidate": self.candidate,
            "bound_s": self.bound_s,
            "processes": [
                {**p.to_dict(), "serves_database_choice": self.serves_it(p)} for p in self.processes
            ],
            "summary": self.summary(),
        }
