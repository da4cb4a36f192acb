"""The A/B simulation of `gpt2bot bench loop`: how often does the decision rule promote, retire
or stay undecided when the candidate is truly better, equal or worse?

Each simulated experiment serves members by the rule's share; ratings arrive one at a time, on
the arm a coin with that share picks, 👍 with the arm's true rate (control 0.5; the candidate
0.5 + `MARGIN`, 0.5 or 0.5 - `MARGIN`). After every rating the real rule
(`admin.ab_rule.decide`, with `next_probability` keeping P exact in constant time) decides, at
the real thresholds (`ABConfig`). `median_ratings` is the median number of ratings (both arms
together) an experiment took to end, decided or "no difference". Seeded: the same seed gives
the same table. No model, no database: a few seconds of CPU.
"""

from __future__ import annotations

import random
import statistics
from typing import Any

from admin.ab_rule import Ruling, Tally, decide, next_probability
from admin.config import ABConfig

CONTROL_RATE = 0.5
MARGIN = 0.1  # the candidate's true 👍 rate is this much above (better) or below (worse)
SCENARIOS = {"better": MARGIN, "equal": 0.0, "worse": -MARGIN}
RUNS = 2000  # per scenario: a share's standard error is at most 1.1 points
SEED = 14
TARGET_BETTER_PROMOTED = 0.90  # issue 14: promote a truly better candidate in >= 90 % of runs
TARGET_OTHERS_PROMOTED = 0.05  # ... and an equal or worse one in <= 5 %
OUTCOMES = {
    Ruling.PROMOTE: "promoted",
    Ruling.RETIRE: "retired",
    Ruling.NO_DIFFERENCE: "undecided",
}


def _experiment(rng: random.Random, candidate_rate: float, config: ABConfig) -> tuple[str, int]:
    """One simulated experiment to its end: (outcome, ratings taken)."""
    control, candidate, probability = Tally(), Tally(), 0.5
    while True:
        on_candidate = rng.random() < config.share
        up = rng.random() < (candidate_rate if on_candidate else CONTROL_RATE)
        arm = "candidate" if on_candidate else "control"
        probability = next_probability(probability, control, candidate, arm, up)
        if on_candidate:
            candidate = candidate.add(up)
        else:
            control = control.add(up)
        decision = decide(control, candidate, config, probability)
        if decision.ruling is not Ruling.CONTINUE:
            return OUTCOMES[decision.ruling], control.ratings + candidate.ratings


def simulate_ab(config: ABConfig, runs: int | None = None, seed: int = SEED) -> dict[str, Any]:
    """The share of `runs` (default `RUNS`) simulated experiments per scenario that ended
    promoted, retired or undecided, and the median ratings they took."""
    runs = RUNS if runs is None else runs
    report: dict[str, Any] = {
        "control_rate": CONTROL_RATE,
        "margin": MARGIN,
        "runs": runs,
        "seed": seed,
        "share": config.share,
        "rule": config.snapshot(),
        "median_ratings_counts": "both arms together, at the end of each experiment",
    }
    for index, (name, shift) in enumerate(SCENARIOS.items()):
        rng = random.Random(seed * len(SCENARIOS) + index)
        rate = CONTROL_RATE + shift
        ends = [_experiment(rng, rate, config) for _ in range(runs)]
        shares = {w: round(sum(end == w for end, _ in ends) / runs, 4) for w in OUTCOMES.values()}
        report[name] = {
            "candidate_rate": round(rate, 4),
            **shares,
            "median_ratings": int(statistics.median(n for _, n in ends)),
        }
    report["targets"] = {
        "better_promoted_at_least": TARGET_BETTER_PROMOTED,
        "equal_or_worse_promoted_at_most": TARGET_OTHERS_PROMOTED,
    }
    report["meets_targets"] = (
        report["better"]["promoted"] >= TARGET_BETTER_PROMOTED
        and max(report["equal"]["promoted"], report["worse"]["promoted"]) <= TARGET_OTHERS_PROMOTED
    )
    return report
