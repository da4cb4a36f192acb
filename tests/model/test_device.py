import pytest
import torch

from model.device import resolve_device, resolve_dtype


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
