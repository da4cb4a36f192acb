"""Charts the platforms can post: a run's loss curve, ratings per model version, the two arms
of an A/B experiment.

matplotlib with the Agg backend (no display); figures are built and closed per call, never
kept in pyplot's global state. Blocking: call through `asyncio.to_thread`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from admin.results import ArmStatus, ExperimentStatus
from storage import VersionRatingStats

FIGURE_SIZE = (7.0, 4.0)
DPI = 100
AB_FIGURE_SIZE = (7.0, 2.8)  # two rows: one per arm
# the font has no emoji: labels say "positive" for 👍
ARM_COLOURS = {"control": "#8a8f98", "candidate": "#4c8bf5"}


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _figure() -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE)
    return figure, figure.subplots()


def loss_curve_png(loss_log: Sequence[dict[str, Any]], title: str) -> bytes:
    """Training loss per step and held-out loss at each evaluation."""
    figure, axes = _figure()
    train = [(e["step"], e["loss"]) for e in loss_log if "loss" in e]
    held = [(e["step"], e["eval_loss"]) for e in loss_log if "eval_loss" in e]
    if train:
        axes.plot(*zip(*train, strict=True), label="training loss", linewidth=1)
    if held:
        axes.plot(*zip(*held, strict=True), "o-", label="held-out loss")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss (nats/token)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if train or held:
        axes.legend()
    return _png(figure)


def stats_chart_png(stats: Sequence[VersionRatingStats]) -> bytes:
    """Mean rating and share positive per model version, with rating counts on the bars."""
    figure, axes = _figure()
    names = [s.model_version for s in stats]
    positions = range(len(names))
    bars = axes.bar(positions, [s.positive_share * 100 for s in stats], color="#4c8bf5")
    for bar, s in zip(bars, stats, strict=True):
        axes.annotate(
            f"{s.ratings} ratings\nmean {s.mean_score:+.2f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    axes.set_xticks(list(positions), names, rotation=20, ha="right")
    axes.set_ylabel("% positive ratings")
    axes.set_ylim(0, 115)
    axes.set_title("Ratings per model version" if stats else "No generations yet")
    return _png(figure)


def _arm_label(arm: ArmStatus) -> str:
    liked = "no ratings yet" if arm.up_share is None else f"{arm.up} of {arm.ratings} positive"
    return f"{arm.arm}: {arm.version}\n{arm.share:.0%} of members · {liked}"


def ab_chart_png(status: ExperimentStatus) -> bytes:
    """Each arm's share of 👍 with its 95 % credible interval (before a rating: the interval
    alone, the rule's flat prior), and the probability that the candidate is better."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=AB_FIGURE_SIZE)
    axes = figure.subplots()
    arms = (status.control, status.candidate)
    for row, arm in enumerate(arms):
        low, high = arm.interval
        colour = ARM_COLOURS[arm.arm]
        axes.plot([low * 100, high * 100], [row, row], color=colour, linewidth=6, alpha=0.35)
        if arm.up_share is not None:
            axes.plot([arm.up_share * 100], [row], "o", color=colour, markersize=9)
            axes.annotate(
                f"{arm.up_share:.0%}",
                (arm.up_share * 100, row),
                textcoords="offset points",
                xytext=(0, 9),
                ha="center",
                fontsize=9,
            )
    axes.set_yticks([0, 1], [_arm_label(arm) for arm in arms], fontsize=8)
    axes.set_ylim(-0.6, 1.6)
    axes.set_xlim(0, 100)
    axes.set_xlabel("% positive ratings (bar: 95 % interval)")
    axes.grid(axis="x", alpha=0.3)
    axes.set_title(
        f"Experiment #{status.id} ({status.status}): P(candidate better) = "
        f"{status.probability:.2f}, decision: {status.decision}",
        fontsize=10,
    )
    return _png(figure)
