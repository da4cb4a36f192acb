"""The held-out split by content hash: a text's split never moves as the data grows."""

from __future__ import annotations

import pytest

from model.split import digest, position, split_heldout

TEXTS = [f"Sample number {i} about gardens, robots and fences." for i in range(400)]


def test_adding_texts_never_moves_an_existing_text_between_splits() -> None:
    train, held = split_heldout(TEXTS[:50], 0.1)
    for size in (120, 260, 400):
        bigger_train, bigger_held = split_heldout(TEXTS[:size], 0.1)
        assert set(held) <= set(bigger_held) and set(train) <= set(bigger_train)
        held, train = bigger_held, bigger_train
    assert 0.05 < len(held) / len(TEXTS) < 0.15  # about the fraction asked for


def test_the_split_ignores_order_and_spacing() -> None:
    _, held = split_heldout(TEXTS[:100], 0.1)
    _, shuffled = split_heldout(list(reversed(TEXTS[:100])), 0.1)
    assert set(held) == set(shuffled)
    assert digest("a  robot\npaints ") == digest("a robot paints")


def test_a_tiny_dataset_still_holds_one_text_out() -> None:
    texts = [t for t in TEXTS if position(t) >= 0.1][:3]  # none falls under the fraction
    train, held = split_heldout(texts, 0.1)
    assert len(held) == 1 and len(train) == 2
    assert held == [min(texts, key=position)]
    with pytest.raises(ValueError, match="at least 2 samples"):
        split_heldout(texts[:1], 0.1)


def test_texts_the_starting_version_trained_on_are_never_held_out() -> None:
    _, held = split_heldout(TEXTS[:100], 0.1)
    trained = {digest(held[0])}
    train, again = split_heldout(TEXTS[:100], 0.1, trained)
    assert held[0] in train and held[0] not in again and set(again) == set(held[1:])
