"""`skinseg export`: the model as ONNX, for ONNX Runtime (segment with `backend=onnx`).

The ONNX graph takes normalised images (N, 3, H, W) of any batch size, height and width and returns logits;
the same skinseg metadata JSON as in the weights file is stored in the model's metadata_props, so an .onnx
file alone is enough to segment.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from skinseg.errors import SkinsegError
from skinseg.fileio import atomic_path, cache_root, file_sha256
from skinseg.inference.config import ExportConfig
from skinseg.inference.model_run import ModelRun
from skinseg.models.weights import ModelInfo, info_from_json, load_model, model_file
from skinseg.plan import Plan

METADATA_KEY = "skinseg"


def _import_onnx_package(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise SkinsegError(f"the ONNX backend needs the '{module}' package: pip install 'skinseg-unet[onnx]'") from None


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """torch.onnx's logger says at every export that torchvision is not installed (its detection models are
    skipped, none of ours): four warning lines that are no news to a skinseg user. Its errors still show."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def plan_export(config: ExportConfig) -> Plan:
    """The model read; the .onnx file written (locked while it is)."""
    plan = Plan("export", config.overwrite)
    if (model := config.run.user_model) is not None:
        plan.read(model, "model")
    if Path(config.out).suffix.lower() != ".onnx":
        raise SkinsegError("an ONNX export is named .onnx", config.out)
    plan.write(config.out, "`output`", lock=True)
    return plan


def export_onnx(model_path: str | Path | None, out: str | Path, opset: int = 18, overwrite: bool = False) -> Path:
    """Write the model (bundled when `model_path` is None) as ONNX with dynamic batch, height and width. `out`
    is checked first (plan_export): named .onnx, not the model file, and an existing file replaced only with
    `overwrite`."""
    out = Path(out)
    plan = plan_export(
        ExportConfig(ModelRun(Path(model_path) if model_path is not None else None), out, opset, overwrite)
    )
    plan.check()
    onnx = _import_onnx_package("onnx")
    _import_onnx_package("onnxscript")
    with plan.hold():
        _export(model_path, out, opset, onnx)
    return out


def _export(model_path: str | Path | None, out: Path, opset: int, onnx) -> None:
    model, info = load_model(model_path, "cpu")
    example = torch.zeros(1, 3, info.input_size, info.input_size)
    dims = {
        0: torch.export.Dim("batch", min=1, max=4096),
        2: torch.export.Dim("height", min=1, max=16384),
        3: torch.export.Dim("width", min=1, max=16384),
    }
    # The slow export goes to a scratch folder, so that only the quick final save is an atomic write
    # (during which an interrupt is held back).
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings(), quiet_exporter():
        warnings.simplefilter("ignore")
        exported = Path(scratch) / "model.onnx"
        try:
            torch.onnx.export(
                model,
                (example,),
                str(exported),
                dynamo=True,
                dynamic_shapes={"x": dims},
                input_names=["image"],
                output_names=["logits"],
                opset_version=opset,
                verbose=False,
            )
        except Exception as exc:  # the exporter's own errors are many and deep
            raise SkinsegError(f"ONNX export failed ({type(exc).__name__}: {exc})", out) from None
        graph = onnx.load(str(exported))
    entry = graph.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, info.to_json()
    with atomic_path(out, suffix=".onnx") as tmp:
        onnx.save(graph, str(tmp))


def read_onnx_info(path: Path) -> ModelInfo:
    onnx = _import_onnx_package("onnx")
    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise SkinsegError(f"not a readable ONNX file ({type(exc).__name__})", path) from None
    meta = {p.key: p.value for p in graph.metadata_props}
    if METADATA_KEY not in meta:
        raise SkinsegError("ONNX file without skinseg metadata: export it with `skinseg export`", path)
    return info_from_json(meta[METADATA_KEY], path)


def cached_onnx(model_path: str | Path | None) -> Path:
    """An ONNX export of a weights file, made once and kept in the user cache (keyed by the file's content)."""
    if model_path is not None and Path(model_path).suffix.lower() == ".onnx":
        return Path(model_path)
    source = model_file(model_path)
    if not source.is_file():
        raise SkinsegError("model file not found", source)
    digest = file_sha256(source)[:20]
    target = cache_root() / "onnx" / f"{source.stem}-{digest}.onnx"
    if not target.is_file():
        export_onnx(source, target, overwrite=True)  # a cache entry: another process may have just made it
    return target


class OnnxRunner:
    """Runs an exported model with ONNX Runtime on the CPU: normalised float32 batches in, logits out."""

    def __init__(self, path: Path, threads: int = 0):
        ort = _import_onnx_package("onnxruntime")
        self.info = read_onnx_info(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise SkinsegError(f"ONNX Runtime cannot load the model ({type(exc).__name__})", path) from None
        self.path = path
        self.input_name = _check_graph(self.session, self.info, path)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        logits = self.session.run(None, {self.input_name: array})[0]
        expected = (array.shape[0], self.info.config.out_channels, *array.shape[2:])
        if logits.shape != expected:  # a graph whose dimensions are named, not numbered, is checked here
            raise SkinsegError(
                f"the ONNX graph gave an output of shape {logits.shape} for an input of {array.shape}: its metadata"
                f" says {expected}",
                self.path,
            )
        return torch.from_numpy(logits)


def _check_graph(session, info: ModelInfo, path: Path) -> str:
    """The graph's one input (N, in_channels, H, W) and first output (N, out_channels, H, W), as the metadata
    says, where their dimensions are numbers; the input's name."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or not outputs:
        words = f"takes {len(inputs)} inputs and gives {len(outputs)} outputs; a skinseg model takes one image"
        raise SkinsegError(f"the ONNX graph {words}", path)
    config = info.config
    for what, item, channels in (("input", inputs[0], config.in_channels), ("output", outputs[0], config.out_channels)):
        shape = list(item.shape)
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != channels):
            raise SkinsegError(
                f"the ONNX graph's {what} has the shape {shape}; its metadata says (N, {channels}, H, W)", path
            )
    return inputs[0].name
