"""The admin services' double, beside their seams (`admin/base.py`), the way httpx ships
`MockTransport(handler)` beside `BaseTransport`: the test says what happens.

    admin = scripted_admin({"registry.use": PromotionRefused("v2 was not promoted: ...")})
    ... drive a chat command ...
    assert ("registry.use", ("42", "v2", False)) in admin.calls

Every call of every service is recorded in `calls` as `("service.method", args)`, the
arguments bound to the Protocol method's signature (defaults filled in, `**changes` as one
dict), and answered from `answers` by that name: a function of the arguments (sync or async)
is called, an exception is raised, anything else is returned. Names the test leaves out get
`QUIET`'s answers (nothing to report); any other call raises `NotScripted`. Nothing here
re-implements a service: a test that needs their rules (duplicates, the promotion gate,
schedules) uses the real services on a SQLite file. Not part of the plugin API: a plugin's
tests get the real services from `bot.plugin_api.app_for_tests`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from admin import base
from admin.base import AdminServices
from admin.fleet_view import FleetView
from storage import (
    FINISHED_STATUSES,
    ModelVersionRecord,
    RunStatus,
    ServerSettingsRecord,
    TrainingRunRecord,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHART = PNG_SIGNATURE + b"scripted chart"

SEAMS: dict[str, type] = {
    "curation": base.CurationService,
    "training": base.TrainingService,
    "registry": base.RegistryService,
    "reports": base.ReportService,
    "servers": base.ServerService,
    "experiments": base.ExperimentService,
    "reviews": base.ReviewService,
    "fleet": base.FleetService,
}

# what a call answers when the test does not say: nothing to report (no samples, runs, versions,
# stats, experiment, reports or settings), and the lifecycle calls do nothing
EMPTY = (  # an empty list
    "curation.recent",
    "curation.pending",
    "registry.versions",
    "reports.stats",
    "servers.reported",
    "reviews.win_rates",
)
NOTHING = (  # None
    "training.status",
    "training.wait",
    "training.start_background",
    "training.close",
    "registry.follow",
    "experiments.status",
    "experiments.candidate",
    "experiments.arm_for",
    "experiments.evaluate",
    "experiments.follow",
    "experiments.resume",
    "experiments.close",
)
QUIET: dict[str, Any] = {
    **{name: lambda *args: [] for name in EMPTY},
    **dict.fromkeys(NOTHING),
    "training.cancel": False,
    "reports.stats_chart": CHART,
    "reports.loss_curve": CHART,
    "servers.get": ServerSettingsRecord,  # the defaults: ServerSettingsRecord(platform, id)
    "fleet.view": lambda: FleetView(None, None, (), 5.0),
    "fleet.wait": lambda timeout_s: FleetView(None, None, (), 5.0),
}


class NotScripted(AssertionError):
    """The code under test made a call the test did not say the answer to."""


@dataclass(frozen=True)
class ScriptedAdmin(AdminServices):
    """`AdminServices` answering from `answers` (a test may change them as it goes), with the
    log of every call in `calls`."""

    answers: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)


def scripted_admin(answers: Mapping[str, Any] = {}) -> ScriptedAdmin:
    """Admin services answering each call from `answers` by its name ("registry.use"),
    else from `QUIET`."""
    merged: dict[str, Any] = {**QUIET, **answers}
    calls: list[tuple[str, tuple[Any, ...]]] = []
    services = {name: _Service(name, seam, merged, calls) for name, seam in SEAMS.items()}
    return ScriptedAdmin(**services, answers=merged, calls=calls)


class _Service:
    """One service of a `ScriptedAdmin`: each method of its Protocol records the call and
    answers what the test said."""

    def __init__(self, name: str, seam: type, answers: dict[str, Any], calls: list[Any]) -> None:
        self._name, self._seam, self._answers, self._calls = name, seam, answers, calls

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_") or not hasattr(self._seam, method):
            raise AttributeError(f"{self._seam.__name__} has no {method}")
        signature, name = inspect.signature(getattr(self._seam, method)), f"{self._name}.{method}"

        async def call(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            values = tuple(bound.arguments.values())[1:]  # without self
            self._calls.append((name, values))
            return await _reply(self._answers, name, values)

        return call


async def _reply(answers: dict[str, Any], name: str, args: tuple[Any, ...]) -> Any:
    if name not in answers:
        raise NotScripted(f"the test did not say what {name} answers")
    result = answers[name]
    if isinstance(result, BaseException):
        raise result
    if callable(result):
        result = result(*args)
        if inspect.isawaitable(result):
            result = await result
    return result


def version_record(name: str, status: str = "retired", **fields: Any) -> ModelVersionRecord:
    """A model version as the registry reports it (`fields` override)."""
    values: dict[str, Any] = {
        "name": name,
        "parent": None,
        "path": f"/models/{name}",
        "base_model": "bootstrap",
        "training_run_id": None,
        "metrics": {},
        "status": status,
        "created_at": datetime.now(UTC),
        "activated_at": datetime.now(UTC) if status == "active" else None,
    }
    return ModelVersionRecord(**{**values, **fields})


def run_record(run_id: int, status: RunStatus, actor: str = "admin", **fields: Any) -> Any:
    """A training run as the training service reports it: 42 samples; a success's eval loss
    went 3.5 → 3.1 and promoted `ft-{run_id}` (`fields` override)."""
    succeeded, done = status == RunStatus.SUCCEEDED, status in FINISHED_STATUSES
    values: dict[str, Any] = {
        "id": run_id,
        "trigger": "manual",
        "requested_by": actor,
        "status": status,
        "dataset_size": 42,
        "dataset_snapshot": [],
        "loss_log": [],
        "progress": 1.0 if succeeded else 0.0,
        "eval_before": {"eval_loss": 3.5},
        "eval_after": {"eval_loss": 3.1, "promoted": True} if succeeded else {},
        "model_version": f"ft-{run_id}" if succeeded else None,
        "error": None,
        "created_at": datetime.now(UTC),
        "finished_at": datetime.now(UTC) if done else None,
        "eta_s": 30.0 if status == RunStatus.RUNNING else None,
    }
    return TrainingRunRecord(**{**values, **fields})
