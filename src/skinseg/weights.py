"""Model files: one .safetensors file with the tensors and, in its metadata, all needed to rebuild and use them.

The metadata entry "skinseg" holds JSON: format, architecture, model config, input size, normalisation,
threshold, skinseg version and a short training summary. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from skinseg import __version__
from skinseg.config import ConfigError, ModelConfig
from skinseg.errors import SkinsegError
from skinseg.fileio import atomic_path
from skinseg.model import SegmentationModel

FORMAT = "skinseg-model/1"
LEGACY_ARCHITECTURE_NAMES = {"ImprovedUNet": "improved_unet"}  # files written before the registry
BUNDLED_MODEL = "skinseg-isic2018.safetensors"


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about how to use its weights."""

    config: ModelConfig = field(default_factory=ModelConfig)
    input_size: int = 256
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)
    threshold: float = 0.5
    version: str = __version__
    training: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "architecture": self.config.architecture,
                "config": self.config.to_dict(),
                "input_size": self.input_size,
                "normalisation": {"mean": list(self.mean), "std": list(self.std)},
                "threshold": self.threshold,
                "skinseg_version": self.version,
                "training": self.training,
            }
        )


def bundled_model_path() -> Path:
    return Path(str(resources.files("skinseg") / "assets" / BUNDLED_MODEL))


def save_model(model: SegmentationModel, path: str | Path, info: ModelInfo, dtype: torch.dtype | None = None) -> Path:
    """Write weights and metadata atomically; `dtype=torch.float16` halves the file."""
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu")
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[name] = tensor.contiguous()
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"skinseg": info.to_json()})
    return path


def read_info(path: str | Path) -> ModelInfo:
    """Read and check the metadata of a model file without loading its tensors."""
    path = Path(path)
    if not path.is_file():
        raise SkinsegError("model file not found", path)
    try:
        with open(path, "rb") as handle:
            header_len = int.from_bytes(handle.read(8), "little")
            if not 2 <= header_len <= 100_000_000 or header_len + 8 > path.stat().st_size:
                raise SkinsegError("not a safetensors file (or truncated)", path)
            header = json.loads(handle.read(header_len))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SkinsegError("not a safetensors file: its header is not JSON", path) from None
    meta_text = (header.get("__metadata__") or {}).get("skinseg") if isinstance(header, dict) else None
    if meta_text is None:
        raise SkinsegError("safetensors file without skinseg metadata: not a skinseg model", path)
    return info_from_json(meta_text, path)


def _three_floats(values) -> tuple[float, float, float]:
    first, second, third = (float(v) for v in values)  # ValueError unless exactly three numbers
    return first, second, third


def info_from_json(meta_text: str, path: Path) -> ModelInfo:
    """Check the skinseg metadata JSON of a model file (safetensors or ONNX) and read it."""
    try:
        meta = json.loads(meta_text)
    except json.JSONDecodeError:
        raise SkinsegError("skinseg metadata is not valid JSON", path) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SkinsegError(
            f"unsupported model format {meta.get('format') if isinstance(meta, dict) else meta!r} (expected {FORMAT})",
            path,
        )
    from skinseg.architectures import ARCHITECTURES

    named = str(meta.get("architecture"))
    architecture = LEGACY_ARCHITECTURE_NAMES.get(named, named)
    if architecture not in ARCHITECTURES:
        raise SkinsegError(
            f"model architecture is '{meta.get('architecture')}'; this skinseg knows {', '.join(ARCHITECTURES)}", path
        )
    try:
        norm = meta["normalisation"]
        config = ModelConfig.from_dict({"architecture": architecture, **meta["config"]})
        if config.architecture != architecture:
            raise ValueError(f"the metadata names two architectures ({architecture}, {config.architecture})")
        return ModelInfo(
            config=config,
            input_size=int(meta["input_size"]),
            mean=_three_floats(norm["mean"]),
            std=_three_floats(norm["std"]),
            threshold=float(meta["threshold"]),
            version=str(meta.get("skinseg_version", "?")),
            training=dict(meta.get("training") or {}),
        )
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise SkinsegError(f"skinseg metadata is incomplete or invalid ({exc})", path) from None


def load_model(
    path: str | Path | None = None, device: torch.device | str = "cpu"
) -> tuple[SegmentationModel, ModelInfo]:
    """Rebuild the model from a file (the bundled model when `path` is None), in eval mode."""
    path = Path(path) if path is not None else bundled_model_path()
    info = read_info(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise SkinsegError(f"damaged model file ({exc})", path) from None
    from skinseg.architectures import create_model

    model = create_model(info.config)
    expected = model.state_dict()
    problems = sorted(set(expected) ^ set(tensors))
    problems += [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if problems:
        raise SkinsegError(
            f"weights do not match the architecture in its metadata ({len(problems)} tensors, first: {problems[0]})",
            path,
        )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    return model.to(device).eval(), info
