import itertools
import json

import pytest
import torch

from model.bootstrap import EOS, pack_blocks, train_bootstrap, train_tokenizer
from model.versions import ModelUnavailable, load_model, read_metadata, validate_version_name
from tests.conftest import TINY_BOOTSTRAP, TINY_CORPUS

CPU = torch.device("cpu")


def test_tokenizer_round_trips_text_with_unicode():
    tokenizer = train_tokenizer(TINY_CORPUS, vocab_size=300)
    text = "Fine-tuning — naïve café 🤖 attention"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.eos_token == EOS


def test_pack_blocks_uses_every_token_without_padding():
    blocks = pack_blocks([[1, 2, 3], [4, 5], [6]], eos_id=0, block_size=3)
    assert blocks.tolist() == [[1, 2, 3], [0, 4, 5], [0, 6, 0]]
    with pytest.raises(ValueError, match="corpus too small"):
        pack_blocks([[1]], eos_id=0, block_size=8)


def test_bootstrap_folder_is_self_describing(tiny_model_dir):
    metadata = read_metadata(tiny_model_dir)
    assert metadata["base_model"] == "bootstrap"
    assert metadata["report"]["steps"] == 40
    assert metadata["report"]["final_loss"] < 5.0  # ln(300) ≈ 5.7 before training
    assert json.loads((tiny_model_dir / "config.json").read_text())["model_type"] == "gpt2"
    assert not tiny_model_dir.with_name("tiny-1.partial").exists()


def test_reload_gives_the_same_logits_and_generates(tiny_model_dir):
    first = load_model("tiny-1", str(tiny_model_dir), CPU)
    second = load_model("tiny-1", str(tiny_model_dir), CPU)
    ids = first.tokenizer("A language model", return_tensors="pt").input_ids
    with torch.inference_mode():
        assert torch.equal(first.model(ids).logits, second.model(ids).logits)
        output = first.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=8,
            do_sample=False,
            pad_token_id=first.tokenizer.eos_token_id,
        )
    assert output.shape[1] > ids.shape[1]
    assert first.dtype == torch.float32  # fp32 on CPU by default


def test_a_folder_that_is_not_a_model_is_reported(tmp_path):
    with pytest.raises(ModelUnavailable, match="not a loadable model folder"):
        load_model("x", str(tmp_path), CPU)


def test_unknown_hub_id_fails_fast_when_the_hub_is_unreachable(monkeypatch):
    monkeypatch.setattr("model.versions.hub_reachable", lambda timeout_s: False)
    with pytest.raises(ModelUnavailable, match="hub is unreachable"):
        load_model("x", "no-such-org/no-such-model", CPU)


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden", "x" * 65, "v 1", "a/../b"])
def test_unsafe_version_names_are_refused(name):
    with pytest.raises(ValueError, match="invalid model version name"):
        validate_version_name(name)


def test_safe_version_names_pass():
    assert validate_version_name("bootstrap-1") == "bootstrap-1"
    assert validate_version_name("v2.ft_3") == "v2.ft_3"


def test_a_slow_machine_still_trains_every_step(monkeypatch):
    """The budget is steps, not seconds: however slow each step, the same model comes out."""
    clock = itertools.count(0.0, 1000.0)  # every reading of the clock is 1000 s later
    monkeypatch.setattr("model.bootstrap.time.perf_counter", lambda: next(clock))
    seen = []
    _, _, report = train_bootstrap(
        TINY_CORPUS, TINY_BOOTSTRAP, progress=lambda step, total, loss: seen.append(step)
    )
    assert report.steps == TINY_BOOTSTRAP.steps == seen[-1] == len(seen)
