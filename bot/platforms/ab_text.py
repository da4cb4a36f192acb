"""An A/B experiment (`admin.ab_report.ABReport`) in words, worded once: Discord and Slack lay
the lines out with their own markup (`bold`, `code`), the CLI with none."""

from __future__ import annotations

from collections.abc import Callable

from admin.ab_report import ABReport, PairReview
from admin.results import ArmStatus, ExperimentStatus

Markup = Callable[[str], str]
ENDED = {
    "promoted": "ended: the candidate won and now serves everyone",
    "retired": "ended: the candidate lost and was retired",
    "no_difference": "ended: no clear difference at the maximum sample",
    "stopped": "stopped undecided",
}


def _plain(text: str) -> str:
    return text


def arm_line(arm: ArmStatus, code: Markup = _plain) -> str:
    """One arm: version, share, what it served, its 👍 share and 95 % interval."""
    low, high = arm.interval
    liked = "no ratings yet" if arm.up_share is None else f"👍 {arm.up_share:.0%}"
    return (
        f"{arm.arm} {code(arm.version)} ({arm.share:.0%} of members): "
        f"{arm.generations} generations · {arm.ratings} ratings · {liked} "
        f"(95 % interval {low:.0%}–{high:.0%})"
    )


def decision_line(status: ExperimentStatus) -> str:
    """The probability the candidate is better and what the rule says (or how it ended)."""
    said = f"P(candidate better) = {status.probability:.2f}"
    if status.running:
        return f"{said} · decision so far: {status.decision} ({status.reason})"
    ended = ENDED.get(status.status, status.status)
    return f"{said} · {ended} ({status.reason})"


def review_line(review: PairReview | None, code: Markup = _plain, hint: str = "") -> str:
    """The owners' blind-review verdicts on the pair, next to the A/B result."""
    if review is None:
        return f"Blind review of this pair: no verdicts yet{hint}."
    return (
        f"Blind review of this pair: {review.judged} judged · {code(review.candidate)} won "
        f"{review.candidate_wins}, {code(review.control)} won {review.control_wins}, "
        f"{review.ties} tied ({code(review.candidate)} {review.candidate_rate:.0%}, "
        "a tie counting half)"
    )


def experiment_lines(
    report: ABReport, bold: Markup = _plain, code: Markup = _plain, hint: str = ""
) -> list[str]:
    """Head, both arms, the decision and the review: one line each."""
    status = report.status
    head = f"A/B experiment #{status.id}: {status.status}"
    return [
        f"{bold(head)} (started by {status.started_by})",
        arm_line(status.control, code),
        arm_line(status.candidate, code),
        decision_line(status),
        review_line(report.review, code, hint),
    ]
