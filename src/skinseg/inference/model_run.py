"""ModelRun: which model runs and how, the one object that every command running a model nests in its config
(segment, measure, evaluate, export). Torch-free, so that a command builds its config before torch is imported."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from skinseg.errors import check_at_least, check_threshold, check_whole_number
from skinseg.fileio import paths_from_text
from skinseg.models.reference import model_label, user_model
from skinseg.runtime.choices import check_backend, check_device, check_precision


@dataclass(frozen=True)
class ModelRun:
    """The model (None or models.reference.BUNDLED: the bundled model; else a skinseg .safetensors file, or an
    .onnx file with `backend="onnx"`) and the settings it runs with; checked once, here."""

    model: Path | None = None
    threshold: float | None = None  # None: the model's own
    tta: bool = False  # average the predictions of the image and its flips
    postprocess: bool = True  # keep the largest lesion and fill its holes
    backend: str = "torch"  # torch | onnx
    precision: str = "auto"  # auto | fp32 | bf16 (skinseg.runtime.precision)
    device: str = "auto"  # auto | cpu | cuda | mps (skinseg.runtime.device)
    batch_size: int = 8  # images per forward pass

    def __post_init__(self) -> None:
        paths_from_text(self)
        check_whole_number("batch_size", self.batch_size)
        check_at_least("batch_size", self.batch_size, 1)
        if self.threshold is not None:
            check_threshold(self.threshold)
        check_backend(self.backend)
        check_precision(self.precision)
        check_device(self.device)

    @property
    def label(self) -> str:
        """How results and reports name the model."""
        return model_label(self.model)

    @property
    def user_model(self) -> Path | None:
        """The user's model file, read (and checked first) by the command; None for the bundled model."""
        return user_model(self.model)

    def given(self, default: ModelRun | None = None) -> list[str]:
        """The settings that differ from `default` (a plain ModelRun), each as a message names it."""
        default = default or ModelRun()
        named = []
        for setting in fields(self):
            value = getattr(self, setting.name)
            if setting.name != "batch_size" and value != getattr(default, setting.name):
                named.append(f"`{setting.name}=False`" if value is False else f"`{setting.name}`")
        return named
