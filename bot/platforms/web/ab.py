"""The dashboard's A/B experiment panel: its status (both arms, the rule's decision, the
blind-review win rate of the pair) and the versions that can be a candidate, as JSON. Starting
and stopping are admin actions (`actions.ACTIONS`: CSRF, `AdminGate` for the owner, audited).
The page draws the chart of both arms from this JSON (`charts.js`), as it does the stats chart.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin.ab_report import ABReport, latest_report, parse_share, report_of
from admin.base import AdminServices
from admin.fleet_view import FleetView
from bot.params import InvalidRequest
from bot.platforms import fleet_text
from bot.platforms.web.dashboard import DashboardContext


def _said(verb: str, report: ABReport, fleet: FleetView) -> dict[str, Any]:
    status = report.status
    message = (
        f"Experiment #{status.id} {verb}: {status.control.version} against "
        f"{status.candidate.version} ({status.candidate.share:.0%} of members). "
        + fleet_text.experiment_followed(fleet)
    )
    return {"message": message, "experiment": report.to_dict(), "fleet": fleet.to_dict()}


async def ab_start(admin: AdminServices, actor: str, body: dict[str, Any]) -> Any:
    version = str(body.get("version") or "").strip()
    if not version:
        raise InvalidRequest("Choose the candidate version.")
    share = parse_share(str(body.get("share") or ""))
    status = await admin.experiments.start(actor, version, share)
    return _said("started", await report_of(status, admin.reviews), await admin.fleet.view())


async def ab_stop(admin: AdminServices, actor: str, body: dict[str, Any]) -> Any:
    status = await admin.experiments.stop(actor)
    return _said("stopped", await report_of(status, admin.reviews), await admin.fleet.view())


class ABApi:
    def __init__(self, ctx: DashboardContext) -> None:
        self.ctx = ctx

    async def status(self, request: web.Request) -> web.Response:
        admin = self.ctx.admin
        report = await latest_report(admin.experiments, admin.reviews)
        versions = await admin.registry.versions()
        active = next((v.name for v in versions if v.status == "active"), None)
        return web.json_response(
            {
                "experiment": None if report is None else report.to_dict(),
                "active": active,
                "candidates": [v.name for v in versions if v.name != active],
            }
        )

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/admin/api/ab", self.status)]
