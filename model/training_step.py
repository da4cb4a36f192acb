"""What the recipe's training step computes differently from transformers' defaults, for
speed, with the same results (to rounding).

The loss. `model(input_ids, labels=...)` turns every token's hidden state into 50,257 logits,
upcasts them to fp32, takes their log-softmax and, in backward, fills and scatters a gradient
of the same size and takes the log-softmax's backward: for a batch of 8 x 128 tokens, many
passes over 206 MB tensors per step. `causal_lm_loss` makes the head's logits once in the
matrix products' dtype, and upcasts a small chunk of tokens at a time, turns it into its loss
and its gradient (softmax minus one-hot) and writes that back over its logits; the gradients of
the hidden states and of the head's weight are two products with that buffer, made in the
forward pass and kept for backward. Same loss and gradients as transformers' causal-LM loss
(the mean over the predicted tokens).

The MLP's activation. GPT-2's `gelu_new` is the tanh approximation of GELU written as eight
elementwise operations, each a pass over the (tokens, 3072) activations forward and more in
backward; `fuse_gelu` swaps it for torch's own kernel of the same function
(`gelu(approximate="tanh")`) in the model being trained. The saved model is unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

CHUNK_TOKENS = 32  # upcast at a time: (32, 50,257) fp32 is 6.4 MB


def fuse_gelu(model: torch.nn.Module) -> int:
    """Swap GPT-2's `gelu_new` modules for the fused kernel of the same function; how many."""
    from transformers.activations import GELUTanh, NewGELUActivation

    swapped = 0
    for module in model.modules():
        for name, child in module.named_children():
            if isinstance(child, NewGELUActivation):
                setattr(module, name, GELUTanh())
                swapped += 1
    return swapped


class FinalHidden:
    """Keeps the last hidden states of a GPT-2 (the output of `transformer.ln_f`) from each
    forward pass, so the loss can be taken from them (the model computes logits for one
    position only: `logits_to_keep=1`)."""

    def __init__(self, model: torch.nn.Module) -> None:
        final = [m for name, m in model.named_modules() if name.endswith("transformer.ln_f")]
        if len(final) != 1:
            raise ValueError("not a GPT-2 language model: no single transformer.ln_f")
        self.states: torch.Tensor | None = None
        final[0].register_forward_hook(self._keep)

    def _keep(self, module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self.states = output

    def take(self) -> torch.Tensor:
        states, self.states = self.states, None
        if states is None:
            raise RuntimeError("the model ran no forward pass since the last loss")
        return states


def causal_lm_loss(
    model: torch.nn.Module,
    final: FinalHidden,
    head: torch.Tensor,
    input_ids: torch.Tensor,
    dtype: torch.dtype,
) -> torch.Tensor:
    """The mean next-token loss of `input_ids` (B, T) under `model`, whose output embedding
    (the head, (V, D)) is `head`; the head's products in `dtype` (the training dtype)."""
    model(input_ids=input_ids, logits_to_keep=1, use_cache=False)
    hidden = final.take()[:, :-1].reshape(-1, head.shape[1])
    labels = input_ids[:, 1:].reshape(-1)
    loss: torch.Tensor = _ChunkedLoss.apply(hidden, head, labels, dtype)
    return loss


class _ChunkedLoss(torch.autograd.Function):
    """Mean cross-entropy of `hidden @ head.T` against `labels`; products in `dtype` (the
    autocast dtype), the softmax in fp32 a chunk at a time."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        head: torch.Tensor,
        labels: torch.Tensor,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        with torch.autocast(hidden.device.type, enabled=False):
            weight, states = head.to(dtype), hidden.to(dtype)
            logits = states @ weight.t()  # (N, V): becomes the gradient, chunk by chunk
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            for start in range(0, len(labels), CHUNK_TOKENS):
                rows = slice(start, start + CHUNK_TOKENS)
                chunk, targets = logits[rows].float(), labels[rows]
                norm = torch.logsumexp(chunk, dim=1)
                total += (norm - chunk.gather(1, targets[:, None])[:, 0]).sum()
                # d(sum of the losses)/d(logits) = softmax - one-hot
                chunk.sub_(norm[:, None]).exp_()
                chunk[torch.arange(len(targets), device=chunk.device), targets] -= 1
                logits[rows] = chunk
            grads = (
                logits @ weight if ctx.needs_input_grad[0] else None,
                logits.t() @ states if ctx.needs_input_grad[1] else None,
            )
        ctx.save_for_backward(*(g if g is not None else torch.empty(0) for g in grads))
        ctx.count, ctx.dtypes = len(labels), (hidden.dtype, head.dtype)
        return total / ctx.count

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        scale = grad_loss / ctx.count
        needed = ctx.needs_input_grad[:2]  # hidden, head
        grads = [
            (grad * scale).to(dtype) if need else None
            for grad, dtype, need in zip(ctx.saved_tensors, ctx.dtypes, needed, strict=True)
        ]
        return (*grads, None, None)
