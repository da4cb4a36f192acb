"""Held-out evaluation and packing helpers shared by fine-tuning, the gate and the benchmark."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

EVAL_PROMPTS = (
    "A language model is",
    "The best way to learn",
    "Training data",
)
EVAL_SAMPLE_SEED = 7


def pack_cyclic(token_lists: Sequence[list[int]], eos_id: int, block_size: int) -> torch.Tensor:
    """Samples joined with EOS after each, cut into `block_size` blocks (N, T).

    The last partial block is completed with tokens from the start of the stream instead of
    padding, so every trained token is real text and small datasets lose nothing.
    """
    stream: list[int] = []
    for ids in token_lists:
        stream.extend(ids)
        stream.append(eos_id)
    if len(stream) < 2:
        raise ValueError("no text to train on: add curated samples first")
    if len(stream) < block_size:
        block_size = len(stream)
    remainder = len(stream) % block_size
    if remainder:
        need = block_size - remainder
        stream.extend((stream * (need // len(stream) + 1))[:need])
    return torch.tensor(stream, dtype=torch.long).view(-1, block_size)


@contextmanager
def plain_forward(model: Any) -> Iterator[None]:
    """The model's own forward, without the autocast wrapper accelerate puts on a model it
    prepares for mixed precision: versions are evaluated in fp32, as the promotion gate
    measures them (`compare_on_heldout`), whatever precision they trained in; and a sample
    generated token by token under autocast casts every weight again for each token (40
    tokens of GPT-2 124M: ~3x slower on the 2-core Xeon)."""
    original = getattr(model, "_original_forward", None)
    if original is None:
        yield
        return
    patched = model.forward
    model.forward = original
    try:
        yield
    finally:
        model.forward = patched


@torch.no_grad()
def heldout_loss(model: Any, tokenizer: Any, texts: Sequence[str], block_size: int) -> float:
    """Mean next-token loss over `texts` (EOS-joined, cut into blocks), weighted by tokens."""
    stream: list[int] = []
    for text in texts:
        stream.extend(tokenizer.encode(text))
        stream.append(tokenizer.eos_token_id)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with plain_forward(model):
        for start in range(0, len(stream), block_size):
            block = stream[start : start + block_size]
            if len(block) < 2:
                continue
            ids = torch.tensor([block], device=device)  # (1, T)
            mask = torch.ones_like(ids)
            loss = model(input_ids=ids, attention_mask=mask, labels=ids).loss.float().item()
            total += loss * (len(block) - 1)
            count += len(block) - 1
    model.train(was_training)
    if count == 0:
        raise ValueError("held-out set is empty")
    return total / count


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))


@torch.no_grad()
def sample_outputs(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int
) -> list[dict[str, str]]:
    """One seeded sample per fixed prompt, for side-by-side reading of two versions."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    samples = []
    with plain_forward(model):
        for prompt in prompts:
            torch.manual_seed(EVAL_SAMPLE_SEED)
            ids = torch.tensor([tokenizer.encode(prompt)], device=device)
            output = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=True,
                temperature=0.8,
                top_k=50,
                top_p=0.95,
                pad_token_id=tokenizer.eos_token_id,
            )
            text = tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)
            samples.append({"prompt": prompt, "output": str(text)})
    model.train(was_training)
    return samples


def evaluation(
    model: Any,
    tokenizer: Any,
    version: str,
    heldout: Sequence[str],
    block_size: int,
    prompts: Sequence[str],
    max_new_tokens: int,
) -> dict[str, Any]:
    """A version's held-out loss, perplexity and fixed-prompt samples, as runs report them."""
    loss = heldout_loss(model, tokenizer, heldout, block_size)
    return {
        "version": version,
        "eval_loss": loss,
        "perplexity": perplexity(loss),
        "samples": sample_outputs(model, tokenizer, prompts, max_new_tokens),
    }


def compare_on_heldout(
    paths: dict[str, str], texts: Sequence[str], block_size: int
) -> dict[str, float]:
    """Held-out loss of several versions (full or adapter) on the same texts, in fp32 on the CPU
    (blocking; run in a thread)."""
    from model.versions import load_model

    losses = {}
    for name, path in paths.items():
        loaded = load_model(name, path, torch.device("cpu"), "fp32")
        losses[name] = heldout_loss(loaded.model, loaded.tokenizer, texts, block_size)
        del loaded
    return losses
