"""Liveness and readiness of a running bot, whatever its platform.

`/healthz` answers while the process serves HTTP at all (a supervisor restarts it when not).
`/readyz` answers 200 only when every check passes: the database answers, a model version is
loaded, and a chat platform is connected to its gateway or socket; otherwise 503 with the
failing check, so a load balancer or an orchestrator can hold traffic or alert. Its `model`
part names the version served here and whether it is the one the database names active (a
process that cannot load that one keeps serving, and stays ready: it says why instead).
The HTTP side is `bot/platforms/health.py`; the platform tells its connection through
`ReportsConnection`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from admin.follow import Follower
    from model.backends.base import Backend
    from storage import Database

DATABASE_CHECK_TIMEOUT_S = 5.0  # a database slower than this to answer `SELECT 1` is not ready


@dataclass(frozen=True)
class HealthConfig:
    # serve /healthz, /readyz and /metrics on this port (any platform); unset = only on the
    # web server (web platform, Slack in HTTP mode); 0 = a free port, logged at start
    port: int | None = field(
        default=None,
        metadata={"env": "HEALTH_PORT", "min": 0, "max": 65535, "help": "a TCP port"},
    )
    # the address HEALTH_PORT listens on; 0.0.0.0 for probes and scrapes from other machines
    host: str = field(default="127.0.0.1", metadata={"env": "HEALTH_HOST"})


@runtime_checkable
class ReportsConnection(Protocol):
    """A platform that can tell whether it is connected (Discord's gateway, Slack's socket)."""

    async def connected(self) -> bool:
        """True while the platform can receive its users' commands."""
        ...


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, str] = field(default_factory=dict)  # check -> "ok ..." or the problem
    # served, database (its active version), matches, candidate, problem
    model: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"ready": self.ready, "checks": self.checks, "model": self.model}


def not_ready(reason: str) -> Readiness:
    """While the bot starts (migrations, preparing the model) or stops."""
    return Readiness(False, {"app": reason})


class Checked(Protocol):
    """What readiness looks at (the `App`): its database, its generation backend and how it
    follows the database."""

    db: Database
    backend: Backend
    follower: Follower


async def readiness(app: Checked, platform: object | None = None) -> Readiness:
    """Run the checks; each names what failed in words an operator can act on."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(app.db.run(app.db.ping), DATABASE_CHECK_TIMEOUT_S)
        checks["database"] = "ok"
    except TimeoutError:
        checks["database"] = f"no answer within {DATABASE_CHECK_TIMEOUT_S:g} s"
    except Exception as error:
        checks["database"] = f"unreachable: {type(error).__name__}: {error}".splitlines()[0]
    version = app.backend.model_version
    checks["model"] = f"ok: {version}" if version else "no model version is loaded"
    state = app.follower.state
    model: dict[str, object] = {"served": version}
    if state.rounds:
        model.update(
            database=state.active,
            matches=state.matches,
            candidate=state.candidate,
            problem=state.problem,
        )
        if version and not state.matches:
            why = state.problem or "switching to it now"
            checks["model"] = f"ok: {version}, not the database's {state.active}: {why}"
    if isinstance(platform, ReportsConnection):
        connected = await platform.connected()
        name = getattr(platform, "name", "platform")
        checks[name] = "ok: connected" if connected else "not connected"
    ready = all(value.startswith("ok") for value in checks.values())
    return Readiness(ready, checks, model)
