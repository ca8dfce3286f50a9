import pytest
import torch

from skinseg.device import resolve_device
from skinseg.errors import SkinsegError


def test_auto_picks_an_available_device():
    device = resolve_device("auto")
    expected = "cuda" if torch.cuda.is_available() else None
    if expected:
        assert device.type == expected
    else:
        assert device.type in ("cpu", "mps")


def test_cpu_is_always_there():
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_missing_cuda_is_a_clear_error():
    with pytest.raises(SkinsegError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_unknown_device_is_a_clear_error():
    with pytest.raises(SkinsegError, match="unknown device 'tpu'"):
        resolve_device("tpu")
