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
from safetensors.torch import load_file

from skinseg import __version__
from skinseg.errors import MIN_NORMALISATION_STD, ConfigError, SkinsegError
from skinseg.fileio import save_tensors
from skinseg.models.config import ModelConfig
from skinseg.models.layers import SegmentationModel
from skinseg.models.reference import BUNDLED, is_bundled
from skinseg.runtime.device import resolve_device

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
    # Each mask's outline moved out (> 0) or in (< 0) by this fraction of its equivalent diameter, after
    # thresholding and post-processing: a site's outlining convention, as `adapt` calibrates it.
    boundary_offset: float = 0.0

    def to_json(self) -> str:
        offset = {"boundary_offset": self.boundary_offset} if self.boundary_offset else {}
        return json.dumps(
            {
                "format": FORMAT,
                "architecture": self.config.architecture,
                "config": self.config.to_dict(),
                "input_size": self.input_size,
                "normalisation": {"mean": list(self.mean), "std": list(self.std)},
                "threshold": self.threshold,
                **offset,
                "skinseg_version": self.version,
                "training": self.training,
            }
        )


def bundled_model_path() -> Path:
    return Path(str(resources.files("skinseg") / "assets" / BUNDLED_MODEL))


def model_file(path: str | Path | None) -> Path:
    """The file a model option names: None or BUNDLED is the bundled model, anything else a path, said wrong in
    one line where it is a folder, an ONNX file or empty."""
    if path is None or is_bundled(path):
        return bundled_model_path()
    if not str(path):
        raise SkinsegError(f"`model` is empty: give a skinseg .safetensors file, or '{BUNDLED}'")
    path = Path(path)
    if path.is_dir():
        runs = [name for name in ("best.safetensors", "last.safetensors") if (path / name).is_file()]
        hint = f": give a file, e.g. {path / runs[0]}" if runs else ": give a skinseg .safetensors file"
        raise SkinsegError(f"is a folder{' (a training run)' if runs else ''}{hint}", path)
    if path.suffix.lower() == ".onnx":
        raise SkinsegError("is an ONNX file: segment with it through `backend=onnx`", path)
    return path


def save_model(model: SegmentationModel, path: str | Path, info: ModelInfo, dtype: torch.dtype | None = None) -> Path:
    """Write weights and metadata atomically; `dtype=torch.float16` halves the file. Metadata that load_model
    would refuse, or weights that do not fit `info.config`, are refused first (ValueError): the file would be
    written, then never read."""
    _check_fits(model, info)
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu")
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[name] = tensor.contiguous()
    path = Path(path)
    save_tensors(path, tensors, metadata={"skinseg": info.to_json()})
    return path


def _check_fits(model: SegmentationModel, info: ModelInfo) -> None:
    """ConfigError (a ValueError) unless `info` is in load_model's ranges and `model`'s tensors have the names
    and shapes of info.config's architecture."""
    from skinseg.models.architectures import create_model

    try:
        _check_ranges(info)
    except ValueError as exc:  # the words load_model would say, before the file is written
        raise ConfigError(f"the model cannot be saved: {exc}") from None
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in create_model(info.config).state_dict().items()}
    actual = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if actual != expected:
        first = next(k for k in sorted(expected.keys() | actual.keys()) if expected.get(k) != actual.get(k))
        raise ConfigError(
            f"the weights do not fit `info.config` (first: {first}: {actual.get(first)},"
            f" expected {expected.get(first)})"
        )


def read_info(path: str | Path) -> ModelInfo:
    """Read and check the metadata of a model file without loading its tensors."""
    path = model_file(path)
    return info_from_json(_skinseg_metadata(path, _read_header(path)), path)


def _read_header(path: Path) -> dict:
    """The JSON header of a safetensors file: tensor names, dtypes, shapes and offsets, and the metadata."""
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
    if not isinstance(header, dict):
        raise SkinsegError("not a safetensors file: its header is not a JSON object", path)
    return header


def _skinseg_metadata(path: Path, header: dict) -> str:
    meta_text = (header.get("__metadata__") or {}).get("skinseg")
    if meta_text is None:
        raise SkinsegError("safetensors file without skinseg metadata: not a skinseg model", path)
    return meta_text


def _three_floats(values, name: str) -> tuple[float, float, float]:
    if not isinstance(values, list) or len(values) != 3 or not all(_is_number(v) for v in values):
        raise ValueError(f"{name} must be a list of three numbers, got {values!r}")
    first, second, third = (float(v) for v in values)
    return first, second, third


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _entries(meta: dict) -> tuple[dict, dict]:
    """The metadata's config and normalisation, each entry of the type it must have (no Python error text)."""
    missing = [key for key in ("config", "normalisation", "input_size", "threshold") if key not in meta]
    if missing:
        raise ValueError(f"the entry '{missing[0]}' is missing")
    config, norm = meta["config"], meta["normalisation"]
    if not isinstance(config, dict) or not isinstance(norm, dict):
        raise ValueError("config and normalisation must be JSON objects")
    for name, value in config.items():
        whole = name in ("in_channels", "out_channels", "base_filters", "depth", "segmentation_levels")
        wrong_whole = whole and (not isinstance(value, int) or isinstance(value, bool))
        if wrong_whole or (name == "dropout" and not _is_number(value)):
            raise ValueError(f"config {name} must be a {'whole number' if whole else 'number'}, got {value!r}")
    if not _is_number(meta["threshold"]):
        raise ValueError(f"threshold must be a number, got {meta['threshold']!r}")
    return config, norm


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
    from skinseg.models.architectures import ARCHITECTURES

    named = str(meta.get("architecture"))
    architecture = LEGACY_ARCHITECTURE_NAMES.get(named, named)
    if architecture not in ARCHITECTURES:
        raise SkinsegError(
            f"model architecture is '{meta.get('architecture')}'; this skinseg knows {', '.join(ARCHITECTURES)}", path
        )
    try:
        config_entries, norm = _entries(meta)
        config = ModelConfig.from_dict({"architecture": architecture, **config_entries})
        if config.architecture != architecture:
            raise ValueError(f"the metadata names two architectures ({architecture}, {config.architecture})")
        info = ModelInfo(
            config=config,
            input_size=_whole_number(meta["input_size"]),
            mean=_three_floats(norm.get("mean"), "normalisation mean"),
            std=_three_floats(norm.get("std"), "normalisation std"),
            threshold=float(meta["threshold"]),
            version=str(meta.get("skinseg_version", "?")),
            training=dict(meta.get("training") or {}),
            boundary_offset=_number(meta.get("boundary_offset", 0.0), "boundary_offset"),
        )
        _check_ranges(info)
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise SkinsegError(f"skinseg metadata is incomplete or invalid ({exc})", path) from None
    return info


FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")  # safetensors' names; weights cast to integers would load as zeros


MAX_BOUNDARY_OFFSET = 0.25  # of the lesion's equivalent diameter: more would erase or double a lesion


def _number(value, name: str) -> float:
    if not _is_number(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _whole_number(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"input_size must be a whole number, got {value!r}")
    return value


def _check_ranges(info: ModelInfo) -> None:
    """Metadata values that would make every mask wrong (or exhaust memory) without an error of their own."""
    config = info.config
    for name in ("in_channels", "out_channels", "base_filters", "depth", "segmentation_levels"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config {name} must be a whole number, got {value!r}")
    if config.in_channels != 3 or config.out_channels != 1:
        raise ValueError(f"expected 3 input channels and 1 output, got {config.in_channels} and {config.out_channels}")
    if not 8 <= info.input_size <= 4096:
        raise ValueError(f"input_size must be between 8 and 4096, got {info.input_size}")
    if not all(0.0 <= m <= 255.0 for m in info.mean):
        raise ValueError(f"normalisation mean must be in [0, 255], got {list(info.mean)}")
    if not all(MIN_NORMALISATION_STD <= s <= 255.0 for s in info.std):  # a tiny std blows every input up to nonsense
        raise ValueError(f"normalisation std must be between {MIN_NORMALISATION_STD} and 255, got {list(info.std)}")
    if not 0.0 < info.threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {info.threshold}")
    if not abs(info.boundary_offset) <= MAX_BOUNDARY_OFFSET:  # nan fails too
        raise ValueError(
            f"boundary_offset must be between -{MAX_BOUNDARY_OFFSET} and {MAX_BOUNDARY_OFFSET},"
            f" got {info.boundary_offset}"
        )


def load_model(
    path: str | Path | None = None, device: torch.device | str = "cpu"
) -> tuple[SegmentationModel, ModelInfo]:
    """Rebuild the model from a file (the bundled model when `path` is None or BUNDLED), in eval mode.

    Checked before anything runs: the metadata's ranges, the tensors' names and shapes against the architecture
    (built first without memory, on the meta device, so a metadata claiming a huge model allocates nothing), and
    every tensor finite. A `device` given by name is resolved as every command resolves one (runtime.device):
    "cuda" without a GPU is one SkinsegError, not torch's AssertionError."""
    if isinstance(device, str):
        device = resolve_device(device)
    path = model_file(path)
    header = _read_header(path)
    info = info_from_json(_skinseg_metadata(path, header), path)
    from skinseg.models.architectures import create_model

    try:
        with torch.device("meta"):
            model = create_model(info.config)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    except Exception as exc:  # an architecture that cannot be built from this config
        raise SkinsegError(
            f"cannot build the architecture in its metadata ({type(exc).__name__}: {exc})", path
        ) from None
    stored = {
        k: tuple(v["shape"]) if isinstance(v, dict) and isinstance(v.get("shape"), list) else None
        for k, v in header.items()
        if k != "__metadata__"
    }
    problems = [f"{k} (missing)" for k in expected if k not in stored]
    problems += [f"{k} (not in the architecture)" for k in stored if k not in expected]
    problems += [
        f"{k} (shape {stored[k]}, expected {expected[k]})" for k in expected if k in stored and stored[k] != expected[k]
    ]
    problems += [
        f"{k} (dtype {v.get('dtype')}, expected a floating-point type)"
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and v.get("dtype") not in FLOAT_DTYPES
    ]
    if problems:
        raise SkinsegError(
            f"weights do not match the architecture in its metadata ({len(problems)} tensors, first: {problems[0]})",
            path,
        )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise SkinsegError(f"damaged model file ({exc})", path) from None
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise SkinsegError(f"tensor {name} holds NaN or infinite values: the weights are unusable", path)
    # The file's tensors become the parameters (assign): no memory is allocated for the meta model, and no
    # to_empty, whose first call imports sympy (0.4-0.9 s of a cold one-image segment; issue #35).
    state = model.state_dict()
    model.load_state_dict({k: v.to(state[k].dtype) for k, v in tensors.items()}, assign=True)
    return model.to(device).eval(), info
