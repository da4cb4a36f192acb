"""What `gpt2bot status`, the dashboard and the admin commands show of the fleet: the
database's choice (active version, A/B candidate) and each live serving process."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from storage import ProcessRecord


@dataclass(frozen=True)
class ProcessStatus(ProcessRecord):
    """One live `gpt2bot run` process, as `gpt2bot status` and the dashboard show it: its
    record (`candidate_version`: the A/B candidate it keeps resident; `problem`: why it does
    not serve what the database says, in its own words) and whether it lags."""

    # what it serves differs from the database's choice, for longer than its bound
    lagging: bool = False

    @classmethod
    def of(cls, record: ProcessRecord, lagging: bool) -> ProcessStatus:
        return cls(**{f.name: getattr(record, f.name) for f in fields(record)}, lagging=lagging)

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
    bound_s: float  # FOLLOW_INTERVAL_S of the processes: how soon they notice a change
    changed_at: datetime | None = None  # when the database's choice last changed

    def serves_it(self, process: ProcessStatus) -> bool:
        return (process.served_version, process.candidate_version) == (self.active, self.candidate)

    @property
    def behind(self) -> tuple[ProcessStatus, ...]:
        """Live processes that do not serve the database's choice (yet)."""
        return tuple(p for p in self.processes if not self.serves_it(p))

    def settled(self) -> bool:
        """Every live process serves the database's choice, or tried since it changed and
        says why it cannot (waiting longer would change nothing)."""
        return all(self.failed(p) for p in self.behind)

    def failed(self, process: ProcessStatus) -> bool:
        """It tried since the change and said why it cannot serve it."""
        changed = self.changed_at
        return process.problem is not None and changed is not None and process.last_seen > changed

    def summary(self) -> str:
        """How the fleet stands, in one sentence: "3 live processes: 1 serves it, 1 will
        follow within 5 s, host:42 does not (cannot load v2: ...)"."""
        total = len(self.processes)
        if total == 0:
            return "No `gpt2bot run` process is live on this database: each serves it at start."
        noun = "process" if total == 1 else "processes"
        behind = self.behind
        if not behind:
            return f"{total} live {noun}: all serve it."
        stuck = [p for p in behind if self.failed(p) or p.lagging]
        parts = [f"{total - len(behind)} serve{'s' if total - len(behind) == 1 else ''} it"]
        if len(behind) > len(stuck):
            parts.append(f"{len(behind) - len(stuck)} will follow within {self.bound_s:g} s")
        parts += [f"{p.host}:{p.pid} does not ({p.problem or 'lagging'})" for p in stuck]
        return f"{total} live {noun}: " + ", ".join(parts) + "."

    def to_dict(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "candidate": self.candidate,
            "bound_s": self.bound_s,
            "changed_at": None if self.changed_at is None else self.changed_at.isoformat(),
            "processes": [
                {**p.to_dict(), "serves_database_choice": self.serves_it(p)} for p in self.processes
            ],
            "summary": self.summary(),
        }
