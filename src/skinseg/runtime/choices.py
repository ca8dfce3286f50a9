"""How a user names a device, a precision and a backend, and the one check of each. Torch-free, so that a config
checks them when it is built, before torch is imported; runtime.device and runtime.precision resolve them."""

from __future__ import annotations

import re

from skinseg.errors import check_setting

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")  # or cuda:N, one GPU of several
PRECISION_CHOICES = ("auto", "fp32", "bf16")
BACKEND_CHOICES = ("torch", "onnx")
_CUDA_INDEX = re.compile(r"cuda:\d+")


def _one_of(name: str, value, choices: tuple[str, ...], more: str = "") -> str:
    """Worded as registry.Registry.check words an unknown name."""
    return f"unknown {name} '{value}'; choose one of {', '.join(choices)}{more}"


def check_device(device) -> None:
    """`device` names a choice of DEVICE_CHOICES or cuda:N, or is a torch.device (which names itself so)."""
    name = device if isinstance(device, str) else str(device) if type(device).__name__ == "device" else None
    known = name is not None and (name.lower() in DEVICE_CHOICES or _CUDA_INDEX.fullmatch(name.lower()))
    check_setting(bool(known), _one_of("device", device, DEVICE_CHOICES, " (or cuda:N)"))


def check_precision(precision) -> None:
    """`precision` names a choice of PRECISION_CHOICES."""
    known = isinstance(precision, str) and precision.lower() in PRECISION_CHOICES
    check_setting(known, _one_of("precision", precision, PRECISION_CHOICES))


def check_backend(backend) -> None:
    """`backend` names a choice of BACKEND_CHOICES."""
    check_setting(backend in BACKEND_CHOICES, _one_of("backend", backend, BACKEND_CHOICES))
