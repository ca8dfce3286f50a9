"""Pick the compute device: CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import torch

from skinseg.errors import SkinsegError
from skinseg.runtime.choices import check_device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a device choice into a torch.device, with a clear error if it is not there."""
    check_device(name)
    name = name.lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SkinsegError("`device=cuda` was asked for, but no CUDA GPU is available (try `device=auto`)")
    if name == "mps" and not _mps_available():
        raise SkinsegError("`device=mps` was asked for, but Apple MPS is not available (try `device=auto`)")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        from skinseg.runtime.precision import cpu_name

        threads = torch.get_num_threads()
        return f"cpu ({cpu_name()}, {threads} thread{'s' if threads != 1 else ''})"
    return device.type
