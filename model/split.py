"""The held-out split, decided by each text's content so it never moves as the data grows.

A text is held out when the hash of its normalised content, read as a fraction in [0, 1), is
below `fraction`. Adding texts therefore never moves an existing one between train and held-out,
so the active version never trained on a text that now judges a candidate. Two exceptions, both
written down here:

- a tiny dataset where no text falls under the fraction holds out its lowest-hash text (every
  run needs one to evaluate on); once a text falls under the fraction, that one returns to
  training. It moves away from the held-out set, never into it, so no version is judged on a
  text it trained on.
- texts a parent version trained on (its `trained_digests`) are never held out: a version made
  before this split, or with a smaller held-out fraction, may have trained on texts the hash
  now holds out.

Preference rows are split by the same hash of prompt + completion, so a rated output that is a
held-out SFT text is a held-out preference row too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

from model.versions import read_metadata

DIGEST_BYTES = 8  # 64 bits: the fraction's resolution, and a short id in version metadata

Item = TypeVar("Item")


def normalise(text: str) -> str:
    """Whitespace runs become one space and the ends are trimmed: a text keeps its split when
    only its spacing changes."""
    return " ".join(text.split())


def digest(text: str) -> str:
    """The content hash of `text` (hex), its identity for the split and in version metadata."""
    return hashlib.blake2b(normalise(text).encode(), digest_size=DIGEST_BYTES).hexdigest()


def position(text: str) -> float:
    """Where `text` falls in [0, 1): held out when below the held-out fraction."""
    return int(digest(text), 16) / 2 ** (8 * DIGEST_BYTES)


def split_by_content(
    items: Sequence[Item],
    fraction: float,
    text_of: Callable[[Item], str],
    trained: Collection[str] = (),
    at_least_one: bool = True,
) -> tuple[list[Item], list[Item]]:
    """(train, held-out) of `items` by the content hash of `text_of(item)`, in their order.

    `trained`: digests of texts the starting version already trained on; they stay in training.
    `at_least_one`: hold out the lowest-hash item when none falls under the fraction.
    """
    eligible = [i for i, item in enumerate(items) if digest(text_of(item)) not in trained]
    held = {i for i in eligible if position(text_of(items[i])) < fraction}
    if (
        not held and eligible and at_least_one
    ):  # a tiny dataset: its lowest-hash text, so one is held out
        held = {min(eligible, key=lambda i: position(text_of(items[i])))}
    train = [item for i, item in enumerate(items) if i not in held]
    return train, [items[i] for i in sorted(held)]


def split_heldout(
    texts: list[str], fraction: float, trained: Collection[str] = ()
) -> tuple[list[str], list[str]]:
    """(train, held-out) texts by content hash; see the module docstring."""
    if len(texts) < 2:
        raise ValueError("need at least 2 samples to train (one is held out for evaluation)")
    train, held = split_by_content(texts, fraction, lambda text: text, trained)
    if not held:
        raise ValueError(
            "every sample was trained on by the starting version, so none can be held out for "
            "evaluation: add new samples before retraining"
        )
    if not train:
        raise ValueError("need at least one sample to train on besides the held-out one")
    return train, held


def trained_digests(version_path: str) -> list[str]:
    """Digests of every text the version at `version_path` (and its ancestors) trained on
    (none for versions made elsewhere or before the split was by content)."""
    return list(read_metadata(version_path).get("trained_digests") or [])
