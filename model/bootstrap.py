"""The offline bootstrap model: a small GPT-2 trained here, from scratch, on the bundled corpus.

Used when the base model cannot be had (no network, nothing cached) or `BASE_MODEL=bootstrap`.
It is NOT OpenAI's GPT-2: same architecture (`GPT2LMHeadModel`), far fewer layers, its own
byte-level BPE vocabulary, and a minute of training on a few hundred sentences. It writes
fluent-looking text in the corpus' domain and is a starting point for fine-tuning, not more.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from model.backends.base import GPT2_CONTEXT_TOKENS
from model.versions import save_version

log = logging.getLogger(__name__)

EOS = "<|endoftext|>"
CORPUS_RESOURCE = "sample-corpus.txt"


@dataclass(frozen=True)
class BootstrapConfig:
    """Size and training budget of the bootstrap model (defaults: about a minute on 2 cores).

    The budget is a number of steps, never a wall-clock cap: a busy machine takes longer but
    builds the same model (a time cap once cut it to 146 of 400 steps, final loss 0.94
    instead of about 0.04), so a new install's first model does not depend on the load."""

    vocab_size: int = 2048  # a small corpus cannot fill GPT-2's 50257 tokens
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 192
    n_positions: int = GPT2_CONTEXT_TOKENS  # same context as GPT-2, so prompts behave the same
    block_size: int = 64  # training sequence length: corpus lines are short
    batch_size: int = 16
    steps: int = 400
    learning_rate: float = 2e-3
    warmup_steps: int = 40
    seed: int = 1234


@dataclass(frozen=True)
class BootstrapReport:
    seconds: float
    steps: int
    final_loss: float
    parameters: int
    corpus_lines: int


def bundled_corpus() -> list[str]:
    """The sample corpus shipped with gpt2bot (our own expository sentences about AI/ML)."""
    text = resources.files("model.data").joinpath(CORPUS_RESOURCE).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def train_tokenizer(lines: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (GPT-2's scheme) trained on `lines`."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(lines), vocab_size=vocab_size, special_tokens=[EOS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=EOS
    )
    tokenizer.model_max_length = GPT2_CONTEXT_TOKENS
    return tokenizer


def pack_blocks(token_lists: Iterable[list[int]], eos_id: int, block_size: int) -> torch.Tensor:
    """Concatenate samples with EOS between them and cut into full blocks: no padding at all."""
    stream: list[int] = []
    for ids in token_lists:
        stream.extend(ids)
        stream.append(eos_id)
    usable = (len(stream) // block_size) * block_size
    if usable == 0:
        raise ValueError(f"corpus too small: {len(stream)} tokens, need at least {block_size}")
    return torch.tensor(stream[:usable], dtype=torch.long).view(-1, block_size)


def _lr_at(step: int, config: BootstrapConfig) -> float:
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_bootstrap(
    lines: list[str],
    config: BootstrapConfig = BootstrapConfig(),
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[GPT2LMHeadModel, PreTrainedTokenizerFast, BootstrapReport]:
    """Train tokenizer and model from scratch on `lines`; returns them with a report."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    # Tokenizer, then the corpus packed into blocks
    tokenizer = train_tokenizer(lines, config.vocab_size)
    blocks = pack_blocks(
        (tokenizer.encode(line) for line in lines), tokenizer.eos_token_id, config.block_size
    )  # (N, T)
    # Model
    gpt_config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=config.n_positions,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(gpt_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    # Train
    model.train()
    generator = torch.Generator().manual_seed(config.seed)
    loss_value, step = float("nan"), 0
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, config)
        index = torch.randint(0, blocks.size(0), (config.batch_size,), generator=generator)
        batch = blocks[index]  # (B, T)
        loss = model(input_ids=batch, attention_mask=torch.ones_like(batch), labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = loss.item()
        if progress is not None:
            progress(step + 1, config.steps, loss_value)
    model.eval()
    report = BootstrapReport(
        seconds=round(time.perf_counter() - started, 2),
        steps=step + 1,
        final_loss=round(loss_value, 4),
        parameters=sum(p.numel() for p in model.parameters()),
        corpus_lines=len(lines),
    )
    return model, tokenizer, report


def build_bootstrap(
    folder: Path,
    lines: list[str] | None = None,
    config: BootstrapConfig = BootstrapConfig(),
    progress: Callable[[int, int, float], None] | None = None,
) -> BootstrapReport:
    """Train the bootstrap model and save it as a loadable version folder at `folder`."""
    corpus = lines if lines is not None else bundled_corpus()
    log.warning(
        "building the offline bootstrap model: a small GPT-2 trained here on %d sentences, "
        "NOT OpenAI's pretrained weights (set BASE_MODEL to a hub id or folder for those)",
        len(corpus),
    )
    model, tokenizer, report = train_bootstrap(corpus, config, progress)
    save_version(
        folder,
        model,
        tokenizer,
        {
            "base_model": "bootstrap",
            "parent": None,
            "description": "small GPT-2 trained from scratch on the bundled sample corpus",
            "bootstrap_config": asdict(config),
            "report": asdict(report),
        },
    )
    log.info(
        "bootstrap model ready: %d parameters, %d steps in %.1fs, final loss %.3f",
        report.parameters,
        report.steps,
        report.seconds,
        report.final_loss,
    )
    return report
