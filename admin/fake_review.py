"""The fake `ReviewService` (part of `admin.fake.fake_admin`): items of the registry's first
two versions whose outputs say which version wrote them, shown in registry order."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from admin.errors import Invalid, ReviewUnavailable, Unknown
from admin.fake_experiments import HasVersions, now
from admin.results import BlindPair
from storage import PairWinRate, ReviewItemRecord


@dataclass
class FakeReviews:
    calls: list[tuple[str, Any]]
    registry: HasVersions  # the fake registry: its versions are the ones compared
    items: list[ReviewItemRecord] = field(default_factory=list)

    async def next_item(
        self,
        actor: str,
        version_a: str | None = None,
        version_b: str | None = None,
        *,
        same_pair_as: int | None = None,
    ) -> BlindPair:
        self.calls.append(("reviews.next_item", (actor, version_a, version_b)))
        names = [v.name for v in self.registry.items]
        if len(names) < 2:
            raise ReviewUnavailable("Train or register a second version first.")
        first, second = version_a or names[0], version_b or names[1]
        values: dict[str, Any] = {
            "id": len(self.items) + 1,
            "prompt": "A language model is",
            "source": "fixed",
            "generation_id": None,
            "version_a": first,
            "version_b": second,
            "output_a": f" what {first} says.",
            "output_b": f" what {second} says.",
            "params": {},
            "seed": 7,
            "created_by": actor,
            "created_at": now(),
        }
        item = ReviewItemRecord(**values, verdict=None, winner=None, reviewer=None, decided_at=None)
        self.items.append(item)
        return BlindPair(item.id, item.prompt, item.source, item.output_a, item.output_b)

    async def record(self, actor: str, item_id: int, choice: str) -> ReviewItemRecord:
        self.calls.append(("reviews.record", (actor, item_id, choice)))
        if not 0 < item_id <= len(self.items):
            raise Unknown(f"There is no review pair #{item_id}.")
        item = self.items[item_id - 1]
        if item.verdict is not None:
            raise Invalid(f"Pair #{item_id} was judged already; its first verdict stands.")
        winner = {"a": item.version_a, "b": item.version_b}.get(choice)
        decided = now()
        item = replace(item, verdict=choice, winner=winner, reviewer=actor, decided_at=decided)
        self.items[item_id - 1] = item
        return item

    async def win_rates(self) -> list[PairWinRate]:
        tally: dict[tuple[str, str], list[int]] = {}
        for item in self.items:
            if item.verdict is not None:
                counts = tally.setdefault(item.pair, [0, 0, 0])
                counts[2 if item.winner is None else item.pair.index(item.winner)] += 1
        return [PairWinRate(*pair, *counts) for pair, counts in tally.items()]
