"""The A/B report's pieces: the blind review of the experiment's own pair, seen from the
candidate whichever way the pair sorts, and the share an owner types."""

from __future__ import annotations

import pytest

from admin.ab_report import pair_review, parse_share
from admin.errors import ExperimentRefused
from storage import PairWinRate

RATES = [
    PairWinRate("a-old", "b-new", first_wins=1, second_wins=3, ties=2),  # first < second
    PairWinRate("a-old", "c-other", first_wins=5, second_wins=0, ties=0),
]


def test_the_review_is_of_this_pair_and_seen_from_the_candidate() -> None:
    review = pair_review(RATES, control="a-old", candidate="b-new")
    assert review is not None
    assert (review.candidate_wins, review.control_wins, review.ties) == (3, 1, 2)
    assert review.candidate_rate == pytest.approx(4 / 6)  # a tie counts half
    swapped = pair_review(RATES, control="b-new", candidate="a-old")
    assert swapped is not None and (swapped.candidate_wins, swapped.control_wins) == (1, 3)
    assert pair_review(RATES, control="b-new", candidate="c-other") is None


def test_a_share_is_a_fraction_or_a_percentage() -> None:
    assert parse_share("0.3") == pytest.approx(0.3)
    assert parse_share(" 25% ") == pytest.approx(0.25)
    assert parse_share("") is None and parse_share(None) is None  # the default, AB_SHARE
    with pytest.raises(ExperimentRefused, match=r"such as 0\.3 or 30%"):
        parse_share("half")
