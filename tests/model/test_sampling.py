"""Per-row sampling against transformers' own logits processors, and incremental decoding."""

from __future__ import annotations

import torch
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from model.bootstrap import train_tokenizer
from model.engine.detok import REPLACEMENT, IncrementalDetokenizer
from model.engine.sampling import (
    RowParams,
    _filtered_candidates,
    apply_repetition_penalty,
    nucleus,
    row_generator,
    sample_next,
)

VOCAB = 300


def params(t: float, k: int, p: float, r: float = 1.0, rows: int = 1) -> RowParams:
    return RowParams(
        torch.full((rows,), t),
        torch.full((rows,), k),
        torch.full((rows,), p),
        torch.full((rows,), r),
    )


def test_repetition_penalty_matches_transformers():
    logits = torch.randn(2, VOCAB, generator=torch.Generator().manual_seed(0))
    context = torch.tensor([[1, 5, 7, 5], [2, 3, 4, 9]])  # 5 repeats: penalized once
    ours = apply_repetition_penalty(logits, context, torch.tensor([1.3, 1.3]))
    theirs = RepetitionPenaltyLogitsProcessor(1.3)(context, logits.clone())
    assert torch.allclose(ours, theirs)
    # a shorter row padded with its own first id gets the same result as unpadded
    padded = torch.tensor([[8, 6, 8, 8]])
    short = apply_repetition_penalty(logits[:1], padded, torch.tensor([1.3]))
    alone = RepetitionPenaltyLogitsProcessor(1.3)(torch.tensor([[8, 6]]), logits[:1].clone())
    assert torch.allclose(short, alone)
    assert not torch.equal(short, logits[:1])  # it did change something


def test_top_k_top_p_keep_the_same_tokens_as_transformers():
    logits = torch.randn(1, VOCAB, generator=torch.Generator().manual_seed(1)) * 3
    for t, k, p in [(0.7, 20, 1.0), (1.0, 0, 0.9), (1.3, 50, 0.8), (0.5, 5, 0.3)]:
        expected = TemperatureLogitsWarper(t)(None, logits.clone())
        if k:
            expected = TopKLogitsWarper(k)(None, expected)
        if p < 1:
            expected = TopPLogitsWarper(p)(None, expected)
        kept = set(torch.nonzero(expected[0] > float("-inf"))[:, 0].tolist())
        probs, ids = _filtered_candidates(logits, params(t, k, p))
        ours = {i for i, q in zip(ids[0].tolist(), probs[0].tolist(), strict=True) if q > 0}
        assert ours == kept, (t, k, p)


def test_the_nucleus_without_top_k_is_the_sorted_one_without_a_sort():
    """Top-p alone (`nucleus`, a radix select): the kept tokens are those a sort keeps, for flat
    and peaked distributions over GPT-2's vocabulary, with transformers' rule on VOCAB."""
    generator = torch.Generator().manual_seed(3)
    for scale in (0.02, 1.0, 4.0):
        for top_p in (0.3, 0.9, 0.95):
            logits = torch.randn(3, 50257, generator=generator) * scale
            probs = torch.softmax(logits, dim=-1)
            ordered, _ = torch.sort(probs.double(), dim=-1, descending=True)
            expected = ((ordered.cumsum(-1) - ordered) < top_p).sum(-1)
            kept = nucleus(probs, torch.full((3,), top_p))
            assert torch.equal((kept > 0).sum(-1), expected), (scale, top_p)
            assert torch.equal(kept[kept > 0], probs[kept > 0])  # kept ones untouched
    small = torch.randn(1, VOCAB, generator=generator) * 3
    for top_p in (0.5, 0.9):
        theirs = TopPLogitsWarper(top_p)(None, small.clone()) > float("-inf")
        ours = nucleus(torch.softmax(small, dim=-1), torch.tensor([top_p])) > 0
        assert torch.equal(ours, theirs)
    # equally probable tokens are all in or all out: 4 of 0.2 and 2 of 0.1, top-p 0.5
    tied = torch.tensor([[0.2, 0.1, 0.2, 0.2, 0.1, 0.2]])
    assert (nucleus(tied, torch.tensor([0.5])) > 0).tolist() == [[1, 0, 1, 1, 0, 1]]


def test_top_p_sampling_draws_only_from_the_nucleus_in_proportion():
    logits = torch.log(torch.tensor([[0.1, 0.5, 0.05, 0.3, 0.05]]))
    generator = row_generator(1)
    draws = [
        int(sample_next(logits, params(1.0, 0, 0.7), None, [generator])[0]) for _ in range(2000)
    ]
    assert set(draws) == {1, 3}  # 0.5 + 0.3 reach 0.7; nothing else
    assert abs(draws.count(1) / len(draws) - 0.5 / 0.8) < 0.05


def test_greedy_rows_take_the_argmax_and_seeded_rows_repeat():
    logits = torch.randn(3, VOCAB, generator=torch.Generator().manual_seed(2))
    rows = RowParams(
        torch.tensor([0.0, 1.0, 1.0]),
        torch.tensor([0, 0, 0]),
        torch.tensor([1.0, 1.0, 1.0]),
        torch.tensor([1.0, 1.0, 1.0]),
    )
    first = sample_next(logits, rows, None, [None, row_generator(5), row_generator(6)])
    again = sample_next(logits, rows, None, [None, row_generator(5), row_generator(6)])
    assert first[0] == logits[0].argmax()
    assert torch.equal(first, again)
    # a sampled row's token does not depend on the rows beside it
    alone = sample_next(logits[1:2], params(1.0, 0, 1.0), None, [row_generator(5)])
    assert alone[0] == first[1]


def test_sampling_follows_the_distribution():
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1] + [1e-9] * 5]))
    generator = row_generator(0)
    draws = [
        int(sample_next(logits, params(1.0, 0, 1.0), None, [generator])[0]) for _ in range(2000)
    ]
    share = [draws.count(i) / len(draws) for i in range(3)]
    assert abs(share[0] - 0.6) < 0.05 and abs(share[1] - 0.3) < 0.05 and share[2] > 0.05


def test_incremental_detokenization_of_multibyte_text():
    text = "Café crème, naïve 日本語 🙂 and plain words."
    tokenizer = train_tokenizer(["plain words and more words", "Café"], vocab_size=300)
    ids = tokenizer.encode(text)
    assert len(ids) > len(text.encode()) // 3  # multi-byte characters span several tokens
    detok = IncrementalDetokenizer(tokenizer)
    chunks = [detok.push(i) for i in ids] + [detok.flush()]
    assert "".join(chunks) == text
    assert all(REPLACEMENT not in chunk for chunk in chunks)
    assert chunks.count("") > 0  # some tokens held back until their character completed
