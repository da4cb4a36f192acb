"""Per-row sampling for a batch: each row has its own parameters and its own random stream.

Order as in transformers: repetition penalty → temperature → top-k → top-p → draw. Greedy rows
(temperature 0) take the arg-max after the penalty. Each sampling row draws exactly one uniform
number per step from its own `torch.Generator`, so a seeded row produces the same text whatever
else shares the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class RowParams:
    """Sampling parameters of the rows of a batch, as tensors on the batch's device."""

    temperature: torch.Tensor  # (B,) float, 0 = greedy
    top_k: torch.Tensor  # (B,) long, 0 = off
    top_p: torch.Tensor  # (B,) float, 1 = off
    penalty: torch.Tensor  # (B,) float, 1 = off


def apply_repetition_penalty(
    logits: torch.Tensor, context: torch.Tensor, penalty: torch.Tensor
) -> torch.Tensor:
    """Make tokens already in the row's context less likely (CTRL-style, as transformers does).

    `context` (B, T) holds each row's token ids; a row shorter than T repeats one of its own ids
    as padding (a repeated id is penalized once: every write of it carries the same value). Only
    the T context columns are touched, not the whole (B, V) vocabulary.
    """
    factor = penalty[:, None]  # (B, 1)
    scores = logits.gather(1, context)  # (B, T)
    scores = torch.where(scores > 0, scores / factor, scores * factor)
    return logits.scatter(1, context, scores)  # (B, V)


def _filtered_candidates(
    logits: torch.Tensor, params: RowParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted candidate probabilities (B, K) and their token ids after top-k and top-p."""
    vocab = logits.shape[-1]
    scaled = logits / params.temperature[:, None]
    top_k = params.top_k.clamp(min=0)
    top_k = torch.where(top_k == 0, torch.full_like(top_k, vocab), top_k).clamp(max=vocab)
    width = int(top_k.max())
    # topk is much cheaper than sorting the whole vocabulary when every row has a small k
    values, ids = torch.topk(scaled, width, dim=-1, sorted=True)  # (B, K)
    rank = torch.arange(width, device=logits.device)[None, :]
    values = values.masked_fill(rank >= top_k[:, None], float("-inf"))
    probs = torch.softmax(values, dim=-1)
    mass_above = probs.cumsum(dim=-1) - probs  # probability of strictly better candidates
    cut = (mass_above >= params.top_p[:, None]) & (params.top_p[:, None] < 1.0)
    probs = probs.masked_fill(cut, 0.0)
    return probs, ids


# the 31 bits of a non-negative float32, high to low: (shift, buckets) of each radix pass
RADIX_PASSES = ((20, 2048), (10, 1024), (0, 1024))


def nucleus(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """`probs` (S, V) with every token outside its row's nucleus set to 0, in vocabulary order.

    A token is in the nucleus when the tokens strictly more probable than it hold less than
    `top_p` of the mass (transformers' rule; tokens of equal probability are all in or all
    out). Rather than sorting the vocabulary (~1.9 ms a row for 50,257 tokens on the 2-core
    Zen 4, and a near-uniform distribution keeps most of it), the threshold is found by a radix
    select over the probabilities' bits: non-negative floats order as their bit patterns, so
    three passes, each summing the mass per bucket of the next bits among the tokens that share
    the bits found so far, give the exact smallest kept probability."""
    rows = probs.shape[0]
    bits = probs.view(torch.int32)
    weights = probs.double()  # zeroed, pass by pass, outside the threshold's prefix
    threshold = torch.zeros(rows, dtype=torch.int32, device=probs.device)
    above = torch.zeros(rows, dtype=torch.float64, device=probs.device)  # mass past the prefix
    for shift, buckets in RADIX_PASSES:
        digit = ((bits >> shift) & (buckets - 1)).long()
        mass = torch.zeros(rows, buckets, dtype=torch.float64, device=probs.device)
        mass.scatter_add_(1, digit, weights)
        # mass of every token more probable than bucket d's: the earlier prefixes' and the
        # higher buckets'; d qualifies when that is below top_p, the lowest such d is the cut
        higher = above[:, None] + mass.sum(-1, keepdim=True) - mass.cumsum(-1)
        qualifies = (higher < top_p[:, None]) & (mass > 0)
        chosen = qualifies.int().argmax(-1)  # the first True: qualifying buckets are a suffix
        above = higher.gather(1, chosen[:, None])[:, 0]
        threshold |= chosen.int() << shift
        weights = weights.masked_fill(digit != chosen[:, None], 0.0)
    return probs.masked_fill(bits < threshold[:, None], 0.0)


def sample_next(
    logits: torch.Tensor,
    params: RowParams,
    context: torch.Tensor | None,
    generators: list[torch.Generator | None],
) -> torch.Tensor:
    """The next token of every row (B,). `generators[i]` is None for greedy rows.

    `context` (B, T): the ids each row's repetition penalty applies to (see
    `apply_repetition_penalty`); None = no penalty.
    """
    logits = logits.float()
    if context is not None and bool((params.penalty != 1.0).any()):
        logits = apply_repetition_penalty(logits, context, params.penalty)
    sampling = [i for i, g in enumerate(generators) if g is not None]
    if not sampling:
        return logits.argmax(dim=-1)
    tokens = torch.empty(logits.shape[0], dtype=torch.long, device=logits.device)
    greedy = [i for i, g in enumerate(generators) if g is None]
    if greedy:
        index = torch.tensor(greedy, device=logits.device)
        tokens[index] = logits[index].argmax(dim=-1)
    # rows without any filter draw over the vocabulary; rows with top-k share one topk of the
    # largest k; rows with top-p alone find their nucleus without a sort
    top_k, top_p = params.top_k.tolist(), params.top_p.tolist()
    groups: list[tuple[list[int], Candidates]] = [
        ([i for i in sampling if top_k[i] == 0 and top_p[i] >= 1.0], _every_token),
        ([i for i in sampling if top_k[i] > 0], _filtered_candidates),
        ([i for i in sampling if top_k[i] == 0 and top_p[i] < 1.0], _nucleus_candidates),
    ]
    for rows, candidates in groups:
        if rows:
            _draw_group(logits, params, generators, rows, tokens, candidates)
    return tokens


# sorted candidate probabilities and their ids (S, K), or probabilities over the whole
# vocabulary in id order (S, V) and None
Candidates = Callable[[torch.Tensor, RowParams], tuple[torch.Tensor, torch.Tensor | None]]


def _every_token(logits: torch.Tensor, params: RowParams) -> tuple[torch.Tensor, None]:
    return torch.softmax(logits / params.temperature[:, None], dim=-1), None


def _nucleus_candidates(logits: torch.Tensor, params: RowParams) -> tuple[torch.Tensor, None]:
    return nucleus(_every_token(logits, params)[0], params.top_p), None


def _draw_group(
    logits: torch.Tensor,
    params: RowParams,
    generators: list[torch.Generator | None],
    rows: list[int],
    tokens: torch.Tensor,
    candidates: Candidates,
) -> None:
    """Draw the next token of `rows` (in place into `tokens`), each from its own generator."""
    index = torch.tensor(rows, device=logits.device)
    subset = RowParams(
        temperature=params.temperature[index],
        top_k=params.top_k[index],
        top_p=params.top_p[index],
        penalty=params.penalty[index],
    )
    probs, ids = candidates(logits[index], subset)
    draws = torch.stack([torch.rand((), generator=generators[i]) for i in rows])
    cdf = probs.cumsum(dim=-1)
    targets = (draws.to(cdf.device) * cdf[:, -1])[:, None]  # (S, 1)
    choice = torch.searchsorted(cdf, targets, right=True).clamp(max=probs.shape[-1] - 1)
    tokens[index] = choice[:, 0] if ids is None else ids.gather(1, choice)[:, 0]


def row_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded for one sample (draws are moved to the device, a few bytes)."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    return generator
