"""The A/B decision rule: is the candidate's 👍 rate higher than the active version's?

Pure functions over counts, no I/O, deterministic (exact sums, no Monte Carlo).

Each arm's 👍 rate has a Beta(1 + 👍, 1 + 👎) posterior (a uniform prior). The rule computes
P = P(candidate's rate > control's) exactly and, once both arms have `min_ratings` counted
ratings, decides after every rating:

- P >= `promote_probability`: promote the candidate;
- P <= 1 - `retire_probability`: retire it;
- both arms at `max_ratings` and neither: "no difference".

Looking after every rating gives chance many tries at crossing a threshold, so a threshold of
0.95 would promote an equal candidate far more often than 5 % of the time. The defaults
(0.998, 0.99, 100, 1000) are tuned by simulation (`bot/bench/ab_simulation.py`), not by
one-look statistics.

The exact probability (with a = 1 + 👍, b = 1 + 👎; A control, B candidate) is
    P(p_B > p_A) = sum_{i<a_B} B(a_A+i, b_A+b_B) / ((b_B+i) B(1+i, b_B) B(a_A, b_A)),
summed here with a ratio between consecutive terms. When one rating arrives, P moves by
    g = B(a_A+a_B, b_A+b_B) / (B(a_A, b_A) B(a_B, b_B))
divided by the count that grew (`next_probability`), which is how the simulation keeps it
exact at every look without re-summing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from admin.config import ABConfig

INTERVAL_LEVEL = 0.95
BISECTION_STEPS = 60  # halves [0, 1] down to 1e-18: well below what anyone reads
TAIL_EPSILON = 1e-17  # stop summing a binomial tail when its terms add nothing more


class Ruling(StrEnum):
    """What the rule says about an experiment now."""

    CONTINUE = "continue"  # not confident yet: keep serving both arms
    PROMOTE = "promote"
    RETIRE = "retire"
    NO_DIFFERENCE = "no_difference"


@dataclass(frozen=True)
class Tally:
    """One arm's counted ratings."""

    up: int = 0
    down: int = 0

    @property
    def ratings(self) -> int:
        return self.up + self.down

    def add(self, up: bool) -> Tally:
        return Tally(self.up + up, self.down + (not up))


@dataclass(frozen=True)
class Decision:
    ruling: Ruling
    probability: float  # P(candidate's 👍 rate > control's)
    fewest: int  # counted ratings of the arm with fewer
    min_ratings: int

    @property
    def reason(self) -> str:
        """The decision in words (built on demand: the simulation decides millions of times)."""
        p = self.probability
        if self.ruling is Ruling.PROMOTE:
            return f"the candidate is better with probability {p:.4f}"
        if self.ruling is Ruling.RETIRE:
            return f"the candidate is worse with probability {1 - p:.4f}"
        if self.ruling is Ruling.NO_DIFFERENCE:
            return f"no confident difference after {self.fewest} ratings per arm (P = {p:.3f})"
        if self.fewest < self.min_ratings:
            return f"each arm needs {self.min_ratings} ratings ({self.fewest} so far)"
        return f"not confident yet (P = {p:.3f})"


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _beats(a_a: int, b_a: int, a_b: int, b_b: int) -> float:
    """P(X_B > X_A) for X ~ Beta(a, b) with whole a, b: the sum above, a_b terms long, in
    logarithms (with a few thousand ratings the first terms are below 1e-308)."""
    log_term = _log_beta(a_a, b_a + b_b) - _log_beta(a_a, b_a)  # (b_B) B(1, b_B) = 1
    logs = []
    for i in range(a_b):
        logs.append(log_term)
        log_term += math.log((a_a + i) * (b_b + i) / ((a_a + b_a + b_b + i) * (1 + i)))
    top = max(logs)
    return math.exp(top) * math.fsum(math.exp(value - top) for value in logs)


def probability_better(control: Tally, candidate: Tally) -> float:
    """P(the candidate's 👍 rate > the control's) under the Beta(1 + 👍, 1 + 👎) posteriors.
    Of four equal forms (by symmetry: 👍 <-> 👎, A <-> B) the shortest sum is taken."""
    a_c, b_c = 1 + control.up, 1 + control.down
    a_t, b_t = 1 + candidate.up, 1 + candidate.down
    shortest = min(a_t, a_c, b_c, b_t)
    if shortest == a_t:
        p = _beats(a_c, b_c, a_t, b_t)
    elif shortest == a_c:
        p = 1.0 - _beats(a_t, b_t, a_c, b_c)
    elif shortest == b_c:  # p_t > p_c  <=>  (1 - p_c) > (1 - p_t)
        p = _beats(b_t, a_t, b_c, a_c)
    else:
        p = 1.0 - _beats(b_c, a_c, b_t, a_t)
    return min(1.0, max(0.0, p))


def next_probability(
    probability: float, control: Tally, candidate: Tally, arm: str, up: bool
) -> float:
    """P after one more rating (`up` or not) on `arm` ("control" | "candidate"), from P
    before it and the tallies before it: exact, in constant time."""
    a_c, b_c = 1 + control.up, 1 + control.down
    a_t, b_t = 1 + candidate.up, 1 + candidate.down
    step = math.exp(_log_beta(a_c + a_t, b_c + b_t) - _log_beta(a_c, b_c) - _log_beta(a_t, b_t))
    if arm == "candidate":
        probability += step / a_t if up else -step / b_t
    else:
        probability += -step / a_c if up else step / b_c
    return min(1.0, max(0.0, probability))


def decide(
    control: Tally, candidate: Tally, config: ABConfig, probability: float | None = None
) -> Decision:
    """The ruling now; `probability` when the caller has it (else it is computed)."""
    p = probability_better(control, candidate) if probability is None else probability
    fewest = min(control.ratings, candidate.ratings)
    ruling = Ruling.CONTINUE
    if fewest < config.min_ratings:
        pass
    elif p >= config.promote_probability:
        ruling = Ruling.PROMOTE
    elif p <= 1.0 - config.retire_probability:
        ruling = Ruling.RETIRE
    elif fewest >= max(config.max_ratings, config.min_ratings):
        ruling = Ruling.NO_DIFFERENCE
    return Decision(ruling, p, fewest, config.min_ratings)


def _beta_cdf(x: float, a: int, b: int) -> float:
    """P(Beta(a, b) <= x) for whole a, b: P(Binomial(a + b - 1, x) >= a), summed from the
    end of the tail nearest the binomial's mode outward (terms only shrink that way)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    n = a + b - 1
    log_x, log_rest = math.log(x), math.log1p(-x)

    def pmf(k: int) -> float:
        log_choose = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        return math.exp(log_choose + k * log_x + (n - k) * log_rest)

    upper = a > math.floor((n + 1) * x)  # the tail k >= a lies above the mode
    k = a if upper else a - 1
    term = pmf(k)
    total = 0.0
    while 0 <= k <= n:
        total += term
        if term <= total * TAIL_EPSILON:
            break
        if upper:
            term *= (n - k) / (k + 1) * x / (1 - x)
            k += 1
        else:
            term *= k / (n - k + 1) * (1 - x) / x
            k -= 1
    return total if upper else 1.0 - total


def _beta_quantile(q: float, a: int, b: int) -> float:
    low, high = 0.0, 1.0
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        if _beta_cdf(middle, a, b) < q:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def interval(tally: Tally, level: float = INTERVAL_LEVEL) -> tuple[float, float]:
    """The equal-tailed credible interval of the arm's 👍 rate (95 % by default)."""
    tail = (1.0 - level) / 2
    a, b = 1 + tally.up, 1 + tally.down
    return _beta_quantile(tail, a, b), _beta_quantile(1.0 - tail, a, b)
