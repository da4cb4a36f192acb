import pytest
import torch

from model import device as devices
from model.device import resolve_device, resolve_dtype, resolve_training_dtype


def test_auto_picks_cpu_here_with_fp32():
    device = resolve_device("auto")
    if not torch.cuda.is_available():
        assert device.type in {"cpu", "mps"}
    assert resolve_dtype(torch.device("cpu")) == torch.float32


def test_gpu_dtype_is_half_precision():
    assert resolve_dtype(torch.device("cuda"), "auto") in {torch.bfloat16, torch.float16}


def test_explicit_dtype_wins():
    assert resolve_dtype(torch.device("cpu"), "bf16") == torch.bfloat16


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_asking_for_a_missing_gpu_says_what_to_do():
    with pytest.raises(ValueError, match="use DEVICE=auto or cpu"):
        resolve_device("cuda")


@pytest.mark.parametrize(
    ("native_bf16", "expected"), [(True, torch.bfloat16), (False, torch.float32)]
)
def test_training_computes_in_bf16_where_the_cpu_multiplies_it_natively(
    monkeypatch, native_bf16, expected
):
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: native_bf16)
    assert resolve_training_dtype(torch.device("cpu")) == expected
    assert resolve_training_dtype(torch.device("cpu"), "fp32") == torch.float32
    assert resolve_training_dtype(torch.device("cuda")) in {torch.bfloat16, torch.float16}
    with pytest.raises(ValueError, match="TRAIN_DTYPE=fp16 needs a GPU"):
        resolve_training_dtype(torch.device("cpu"), "fp16")
