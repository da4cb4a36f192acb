"""How an A/B experiment is reported: each arm's counts and interval, the rule's current
ruling, and the numbers it ended on (split from admin/experiments.py), and where a member
falls in the split (`share_point`)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from typing import Any

from admin.ab_rule import Decision, Tally, interval
from admin.errors import ExperimentRefused
from admin.results import ArmStatus, ExperimentStatus
from storage import ArmCounts, ExperimentRecord

HASH_SPACE = 2.0**64


def share_point(experiment_id: int, platform: str, user_id: str) -> float:
    """Where a member falls in [0, 1) for an experiment: stable across processes and
    restarts (unlike `hash()`), uniform, and drawn afresh for each experiment."""
    digest = hashlib.sha256(f"{experiment_id}:{platform}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / HASH_SPACE


def tally(counts: ArmCounts) -> Tally:
    return Tally(counts.up, counts.down)


def _arm(arm: str, version: str, share: float, counts: ArmCounts) -> ArmStatus:
    up_share = counts.up / counts.ratings if counts.ratings else None
    return ArmStatus(
        arm=arm,
        version=version,
        share=share,
        generations=counts.generations,
        ratings=counts.ratings,
        up=counts.up,
        down=counts.down,
        up_share=up_share,
        interval=interval(tally(counts)),
    )


def status_of(
    record: ExperimentRecord, counts: dict[str, ArmCounts], ruling: str, p: float, reason: str
) -> ExperimentStatus:
    """Blocking (the intervals take milliseconds): called in a thread."""
    share = record.candidate_share
    return ExperimentStatus(
        id=record.id,
        status=record.status,
        control=_arm("control", record.control_version, 1.0 - share, counts["control"]),
        candidate=_arm("candidate", record.candidate_version, share, counts["candidate"]),
        decision=str(ruling),
        probability=p,
        reason=reason,
        rule=record.rule,
        started_by=record.started_by,
        started_at=record.started_at,
        ended_by=record.ended_by,
        ended_at=record.ended_at,
        line=record.line,
    )


def running_refusal(running: ExperimentRecord) -> ExperimentRefused:
    return ExperimentRefused(
        f"Experiment #{running.id} ({running.control_version} against "
        f"{running.candidate_version}) is still running: only one runs at a time"
        f"{'' if running.line is None else ' in a line'}. Stop it first "
        f"(`{'ab stop' if running.line is None else 'line ab stop'}`)."
    )


def outcome_of(counts: dict[str, ArmCounts], decision: Decision, reason: str) -> dict[str, Any]:
    """The numbers a decision was made on, as stored with the ended experiment."""
    return {
        "decision": str(decision.ruling),
        "probability": decision.probability,
        "reason": reason,
        **{arm: asdict(c) for arm, c in counts.items()},
    }
