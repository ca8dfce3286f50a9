"""Numeric precision and memory layout, resolved once per run: the same code on CUDA and on the CPU.

`auto` picks bf16 autocast where the hardware computes it natively (CUDA, and CPUs with AVX512-BF16 or
AMX, as oneDNN reports them) and fp32 elsewhere, because emulated bf16 is slower than fp32. The memory
format follows what was measured on each kind of hardware for each job and image size (CHANNELS_LAST_FROM; the
tables are in docs/benchmarks.md, "Precision"): channels_last where it was faster, contiguous everywhere else.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import torch

from skinseg.runtime.choices import check_precision

JOBS = ("train", "infer")

# The smallest image side from which channels_last beats the contiguous layout under bf16, by hardware and job,
# as measured with benchmarks/precision.py (docs/benchmarks.md, "Precision"); None: slower at every size measured.
# fp32 on the CPU and MPS stay contiguous: channels_last measured slower with fp32 on every CPU here.
CHANNELS_LAST_FROM: dict[tuple[str, str], int | None] = {
    ("cuda", "train"): 0,
    ("cuda", "infer"): 0,
    ("amx", "train"): 256,  # Xeon with AMX, a step at batch 16: 128 px 0.650 s vs 0.574 s, 256 px 3.41 s vs 4.09 s
    ("amx", "infer"): None,  # ms an image at batch 8: 128 px 13.8 vs 10.4, 256 px 51.1 vs 52.0
    ("avx512_bf16", "train"): None,  # AMD EPYC, 128 px: 0.488 s vs 0.382 s a step
    ("avx512_bf16", "infer"): None,  # 10.0 vs 7.7 ms an image
    ("emulated", "train"): 0,  # bf16 forced on a CPU without it, AMD EPYC, 128 px: 22.8 s vs 44.3 s a step
    ("emulated", "infer"): 0,  # 236 vs 2245 ms an image
}


def cpu_has_native_bf16() -> bool:
    """True where oneDNN runs bf16 convolutions natively (AVX512-BF16 or AMX), not by emulation."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_bf16_kind() -> str:
    """How this CPU computes bf16: 'amx' (Intel Xeon with AMX tiles), 'avx512_bf16' (AVX512-BF16 without AMX,
    e.g. AMD EPYC Zen 4) or 'emulated' (neither: bf16 is slower than fp32 there)."""
    if not cpu_has_native_bf16():
        return "emulated"
    return "amx" if "amx_bf16" in (_cpuinfo("flags") or "").split() else "avx512_bf16"


def _cpuinfo(field: str) -> str | None:
    """The first value of `field` in /proc/cpuinfo (None where there is no such file or field)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_features() -> str:
    """What this CPU offers for bf16, in words, for benchmark headers."""
    flags = set((_cpuinfo("flags") or "").split())
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return f"{', '.join(wanted) or 'no AVX flags read'}; oneDNN native bf16: {cpu_has_native_bf16()}"


def cpu_name() -> str:
    import platform

    return _cpuinfo("model name") or platform.processor() or platform.machine()


@dataclass(frozen=True)
class Precision:
    """How a run computes: autocast dtype (None: plain fp32), memory layout, and notes on ignored settings."""

    device_type: str
    dtype: torch.dtype | None = None
    channels_last: bool = False
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def name(self) -> str:
        return "bf16" if self.dtype == torch.bfloat16 else "fp32"

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def describe(self) -> str:
        autocast = "bf16 autocast" if self.dtype is not None else "fp32"
        return f"{autocast}, {'channels_last' if self.channels_last else 'contiguous'}"

    def to_dict(self) -> dict:
        return {"precision": self.name, "memory_format": "channels_last" if self.channels_last else "contiguous"}


def hardware_kind(device: torch.device) -> str:
    """The key of CHANNELS_LAST_FROM for `device`: 'cuda', 'mps', or the CPU's bf16 kind."""
    return cpu_bf16_kind() if device.type == "cpu" else device.type


def resolve_precision(
    name: str, device: torch.device, channels_last: bool | None = None, *, job: str, size: int
) -> Precision:
    """Turn a precision name (and an optional channels_last) into a Precision for `device`,
    `job` ('train' or 'infer') and images of `size` px: the memory format, unless given, is the one measured
    faster there (CHANNELS_LAST_FROM)."""
    check_precision(name)
    name = name.lower()
    if job not in JOBS:
        raise ValueError(f"job is one of {JOBS}, got {job!r}")
    kind = hardware_kind(device)
    native = kind in ("cuda", "amx", "avx512_bf16")
    notes = []
    if name == "auto":
        name = "bf16" if native else "fp32"
    elif name == "bf16" and device.type == "cpu" and not native:
        notes.append(
            "bf16 asked for on a CPU without native bf16 (AVX512-BF16/AMX): it runs emulated, usually slower than fp32"
        )
    if name == "bf16" and device.type == "mps":
        notes.append("bf16 is not used on Apple MPS; running in fp32")
        name = "fp32"
    dtype = torch.bfloat16 if name == "bf16" else None
    if channels_last is None:
        from_size = CHANNELS_LAST_FROM.get((kind, job))
        channels_last = dtype is not None and from_size is not None and size >= from_size
    return Precision(device.type, dtype, channels_last, tuple(notes))


def compile_active(compile: bool, device: torch.device) -> bool:
    """torch.compile runs on CUDA and the CPU (inductor); elsewhere it is ignored."""
    return compile and device.type in ("cuda", "cpu")


def compile_note(compile: bool, device: torch.device) -> str | None:
    """The line that says `compile` is ignored, where it is."""
    if compile and not compile_active(compile, device):
        return f"`compile` is ignored on {device.type}: torch.compile is used on CUDA and the CPU only"
    return None
