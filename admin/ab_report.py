"""An A/B experiment as chat, the dashboard and `gpt2bot ab status` report it: the rule's
status (`ExperimentService.status`) beside the owners' blind-review verdicts on the same two
versions (`ReviewService.win_rates`), and a chart of both arms.

The two measures answer different questions and are never merged: the experiment counts
members' 👍/👎 on what each arm served them; the blind review counts owners' verdicts on
both versions' outputs for the same prompt, names hidden.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from admin.base import ExperimentService, ReviewService
from admin.charts import ab_chart_png
from admin.errors import ExperimentRefused
from admin.results import ExperimentStatus
from storage import PairWinRate


@dataclass(frozen=True)
class PairReview:
    """The blind-review verdicts on an experiment's two versions, seen from the candidate."""

    control: str
    candidate: str
    candidate_wins: int
    control_wins: int
    ties: int

    @property
    def judged(self) -> int:
        return self.candidate_wins + self.control_wins + self.ties

    @property
    def candidate_rate(self) -> float:
        """The candidate's share of the verdicts, a tie counting half (as in `review stats`)."""
        return (self.candidate_wins + self.ties / 2) / self.judged if self.judged else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "control": self.control,
            "candidate": self.candidate,
            "judged": self.judged,
            "candidate_wins": self.candidate_wins,
            "control_wins": self.control_wins,
            "ties": self.ties,
            "candidate_rate": self.candidate_rate,
        }


def pair_review(rates: list[PairWinRate], control: str, candidate: str) -> PairReview | None:
    """The verdicts on exactly this pair, or None when the owners judged none of it."""
    for rate in rates:
        if {rate.first, rate.second} == {control, candidate} and rate.judged:
            first_is_candidate = rate.first == candidate
            wins = (rate.first_wins, rate.second_wins)
            candidate_wins, control_wins = wins if first_is_candidate else wins[::-1]
            return PairReview(control, candidate, candidate_wins, control_wins, rate.ties)
    return None


@dataclass(frozen=True)
class ABReport:
    """What every surface shows of an experiment: its status and the pair's review."""

    status: ExperimentStatus
    review: PairReview | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: `ExperimentStatus.to_dict()` plus `review` (None without verdicts)."""
        review = None if self.review is None else self.review.to_dict()
        return {**self.status.to_dict(), "review": review}


async def report_of(status: ExperimentStatus, reviews: ReviewService) -> ABReport:
    """`status` with the blind-review verdicts on its pair."""
    versions = status.control.version, status.candidate.version
    return ABReport(status, pair_review(await reviews.win_rates(), *versions))


async def latest_report(experiments: ExperimentService, reviews: ReviewService) -> ABReport | None:
    """The running experiment, else the last one, with its pair's review; None if never."""
    status = await experiments.status()
    return None if status is None else await report_of(status, reviews)


async def ab_chart(status: ExperimentStatus) -> bytes:
    """The chart of both arms as a PNG, drawn off the event loop."""
    return await asyncio.to_thread(ab_chart_png, status)


def parse_share(text: str | None) -> float | None:
    """A typed share of members ("0.3" or "30%"); None when left empty (the default,
    `AB_SHARE`). The experiment service checks the range and says what to do."""
    text = (text or "").strip()
    if not text:
        return None
    percent = text.endswith("%")
    try:
        value = float(text.removesuffix("%"))
    except ValueError:
        raise ExperimentRefused(
            f"The share must be a number such as 0.3 or 30%, not {text!r}. Nothing was started."
        ) from None
    return value / 100 if percent else value
