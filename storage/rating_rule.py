"""Which rated generations may become training data: the collusion-resistant rule.

Pure functions over plain rows, so the rule reads (and is tested) apart from the database:

- a member's rating of their own output never counts;
- a Discord account younger than `min_account_days` when it rated does not count (its age is in
  its id: a snowflake carries its creation time), so fresh sock puppets add nothing;
- each rater's 👍 count toward at most `daily_cap` outputs a UTC day (their earliest), so a
  handful of accounts cannot push a flood;
- an output needs `min_raters` distinct counted raters, a net score of `min_net_score`, and a
  Wilson lower bound on its 👍 share of at least `min_lower_bound` (3 of 3 👍 give 0.44 at 95%,
  5 of 6 give 0.44, 2 of 2 only 0.34: agreement among few raters proves little).

`failing` is the mirror rule for outputs raters turned down (preference training pushes the
model away from them): the same rule on the 👎 share, so a net score of at most
-`min_net_score`, `min_raters` counted raters, a Wilson upper bound on the 👍 share of at most
1 - `min_lower_bound`, and each rater's 👎 within the daily cap.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

WILSON_Z = 1.96  # 95% two-sided
DISCORD_EPOCH_MS = 1_420_070_400_000  # the first millisecond of 2015, where snowflakes start


@dataclass(frozen=True)
class RatingRule:
    min_net_score: int = 2
    min_raters: int = 3
    min_lower_bound: float = 0.4  # 0 turns the bound off
    daily_cap: int = 20  # 0: no cap
    min_account_days: int = 0  # Discord raters' account age at rating time; 0: any age


@dataclass(frozen=True)
class RatingRow:
    rating_id: int
    generation_id: int
    author_id: str  # who asked for the generation
    rater_id: str
    score: int  # +1 | -1
    created_at: datetime
    platform: str = ""


def wilson_lower_bound(up: int, total: int, z: float = WILSON_Z) -> float:
    """The lower end of the Wilson score interval for a share of `up` in `total`."""
    if total == 0:
        return 0.0
    share = up / total
    centre = share + z * z / (2 * total)
    margin = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    return (centre - margin) / (1 + z * z / total)


def discord_account_created(user_id: str) -> datetime | None:
    """When a Discord account was made, from its snowflake id (None for other ids)."""
    if not user_id.isdigit():
        return None
    return datetime.fromtimestamp(((int(user_id) >> 22) + DISCORD_EPOCH_MS) / 1000, UTC)


def too_young(row: RatingRow, min_days: int) -> bool:
    if min_days <= 0 or row.platform != "discord":
        return False
    created = discord_account_created(row.rater_id)
    rated = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return created is not None and rated - created < timedelta(days=min_days)


def counted(rows: list[RatingRow], daily_cap: int, min_account_days: int = 0) -> list[RatingRow]:
    """The ratings that count: no self-ratings, no accounts too young, and each rater's 👍
    within the daily cap."""
    used: dict[tuple[str, str], int] = defaultdict(int)  # (rater, day) -> 👍 counted
    kept = []
    for row in sorted(rows, key=lambda r: (r.created_at, r.rating_id)):
        if row.rater_id == row.author_id or too_young(row, min_account_days):
            continue
        if row.score > 0 and daily_cap > 0:
            day = (row.rater_id, row.created_at.date().isoformat())
            if used[day] >= daily_cap:
                continue
            used[day] += 1
        kept.append(row)
    return kept


def passing(rows: list[RatingRow], rule: RatingRule) -> dict[int, dict[str, Any]]:
    """Generation id -> why it passes (the counted ratings and the bound) for those that do."""
    by_generation: dict[int, list[RatingRow]] = defaultdict(list)
    for row in counted(rows, rule.daily_cap, rule.min_account_days):
        by_generation[row.generation_id].append(row)
    result = {}
    for generation_id, ratings in by_generation.items():
        up = sum(r.score > 0 for r in ratings)
        bound = wilson_lower_bound(up, len(ratings))
        net = sum(r.score for r in ratings)
        if len(ratings) < rule.min_raters or net < rule.min_net_score:
            continue
        if rule.min_lower_bound > 0 and bound < rule.min_lower_bound:
            continue
        result[generation_id] = {
            "rating_ids": [r.rating_id for r in ratings],
            "raters": sorted(r.rater_id for r in ratings),
            "up": up,
            "down": len(ratings) - up,
            "lower_bound": round(bound, 3),
        }
    return result


def failing(rows: list[RatingRow], rule: RatingRule) -> dict[int, dict[str, Any]]:
    """Generation id -> why it is turned down, for those the mirror rule picks (see above)."""
    result = passing([replace(row, score=-row.score) for row in rows], rule)
    for why in result.values():  # back to the raters' own 👍 and 👎
        why["up"], why["down"] = why["down"], why["up"]
        why["upper_bound"] = round(1 - why.pop("lower_bound"), 3)
    return result
