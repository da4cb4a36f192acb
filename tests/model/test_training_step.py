"""The training step's loss taken a chunk at a time from the last hidden states: the same loss
and gradients as transformers' own causal-LM loss."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from model import training_step
from model.training_step import FinalHidden, causal_lm_loss, fuse_gelu


def _gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("head_trains", [True, False])  # False: a LoRA run's frozen head
def test_the_chunked_loss_and_its_gradients_match_transformers(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype, tolerance: float, head_trains: bool
) -> None:
    monkeypatch.setattr(training_step, "CHUNK_TOKENS", 5)  # several chunks, the last one short
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=300, n_positions=64)
    model = GPT2LMHeadModel(config).eval()  # no dropout: both passes see the same network
    model.get_output_embeddings().weight.requires_grad_(head_trains)
    final = FinalHidden(model)
    ids = torch.randint(0, 300, (3, 17))
    autocast = torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32)

    with autocast:
        expected = model(input_ids=ids, labels=ids).loss
    expected.backward()
    wanted = _gradients(model)
    with autocast:
        got = causal_lm_loss(model, final, model.lm_head.weight, ids, dtype)
    got.backward()
    grads = _gradients(model)

    assert got.item() == pytest.approx(expected.item(), rel=tolerance / 10)
    assert grads.keys() == wanted.keys()
    assert ("lm_head.weight" in grads or "transformer.wte.weight" in grads) == head_trains
    for name, grad in grads.items():
        scale = float(wanted[name].abs().max())
        assert float((grad - wanted[name]).abs().max()) <= tolerance * scale, name


def test_a_model_without_gpt2_s_final_norm_is_refused() -> None:
    with pytest.raises(ValueError, match="GPT-2"):
        FinalHidden(torch.nn.Linear(2, 2))


def test_the_fused_gelu_computes_what_gpt2_s_gelu_new_computes() -> None:
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=300, n_positions=64)
    model = GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, 300, (2, 9))
    expected = model(input_ids=ids).logits
    assert fuse_gelu(model) == 2  # one per block
    assert fuse_gelu(model) == 0
    assert torch.allclose(model(input_ids=ids).logits, expected, atol=1e-5)
