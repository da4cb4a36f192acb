"""Attention of one decode step on cached keys and values, one query per row: torch's fused
kernel (GPUs) or two batched products around a softmax (CPUs), and the masks each takes; which
kernels `scaled_dot_product_attention` may pick on a device. gpt2bot's own CPU kernel, where it
builds, is in model/engine/native."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend


def attention_backends(device: torch.device) -> list[SDPBackend] | None:
    """The attention kernels the engine lets `scaled_dot_product_attention` pick on `device`
    (None: torch's own choice).

    On CUDA, cuDNN's attention is left out. It builds an execution plan per input shape, and a
    decode step's key length grows by one every step, so every step paid for a new plan:
    measured on an H100, bf16, GPT-2 124M, 32 rows, 99 ms per decode step with it and 5.9 ms
    without (torch then takes the flash or memory-efficient kernel)."""
    if device.type != "cuda":
        return None
    return [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def boolean_mask(visible: torch.Tensor, heads: int, dtype: torch.dtype) -> torch.Tensor:
    """`visible` (B, T) as `sdpa_attention` takes it: (B, 1, 1, T), true where visible."""
    return visible[:, None, None, :]


def additive_mask(visible: torch.Tensor, heads: int, dtype: torch.dtype) -> torch.Tensor:
    """`visible` (B, T) as `bmm_attention` takes it: (B·H, 1, T), 0 where visible and -inf
    elsewhere, built once per step and added by every layer's score product."""
    count, columns = visible.shape
    bias = torch.zeros(count, 1, 1, columns, dtype=dtype, device=visible.device)
    bias.masked_fill_(~visible[:, None, None, :], float("-inf"))
    return bias.expand(count, heads, 1, columns).reshape(count * heads, 1, columns)


def sdpa_attention(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, scale: float
) -> torch.Tensor:
    """One query per row over its cached keys: `query` (B, H, D), `keys`/`values` (B, H, T, D),
    `mask` from `boolean_mask`; (B, H·D). torch's fused kernel (GPUs)."""
    count = query.shape[0]
    attended = F.scaled_dot_product_attention(
        query[:, :, None], keys, values, attn_mask=mask, scale=scale
    )  # (B, H, 1, D)
    return attended.reshape(count, -1)


def bmm_attention(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor, scale: float
) -> torch.Tensor:
    """`sdpa_attention` as two batched matrix products around a softmax (CPUs), `bias` from
    `additive_mask`. For a single query, torch's CPU flash kernel tiles a one-row problem: it
    was ~47 % of a bf16 decode step (32 rows, 2-core Zen 4). This reads each cached key and
    value once, in three ops per layer (four in bf16). `keys`/`values` must be whole cache
    rows (every allocated column): a bf16 product over a column slice copies it first (7x
    slower, measured)."""
    count, heads, dim = query.shape
    columns = keys.shape[2]
    flat_keys = keys.reshape(count * heads, columns, dim)  # a view: rows are contiguous
    flat_values = values.reshape(count * heads, columns, dim)
    queries = query.reshape(count * heads, 1, dim)
    scores = torch.baddbmm(bias, queries, flat_keys.transpose(1, 2), alpha=scale)  # (B·H, 1, T)
    # softmax into fp32: torch's CPU softmax of bf16 took 7.9 ms for 384 x 160 scores on the
    # 2-core Zen 4 (torch 2.13), into fp32 0.03 ms
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(values.dtype)
    attended = torch.bmm(weights, flat_values)
    return attended.view(count, heads * dim)
