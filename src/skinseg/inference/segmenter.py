"""Segmenter: a loaded model with its preprocessing, uint8 RGB arrays in, probability maps and masks out.

Each image is resized to the model's input size, the probabilities are resized back to the image's own
size and thresholded there, so a mask always matches its image pixel for pixel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from skinseg.data.images import decode_rgb, resize_rgb
from skinseg.errors import SkinsegError, check_rgb_image, check_setting, check_threshold
from skinseg.inference.model_run import ModelRun
from skinseg.inference.postprocess import offset_boundary, postprocess_mask
from skinseg.models.reference import model_label
from skinseg.models.weights import load_model, model_file
from skinseg.runtime.choices import check_backend
from skinseg.runtime.device import resolve_device
from skinseg.runtime.precision import resolve_precision


def segmenter_for(run: ModelRun) -> Segmenter:
    """The Segmenter that `run` asks for: the model loaded, on its device, in its precision."""
    return Segmenter(
        run.model,
        device=run.device,
        threshold=run.threshold,
        tta=run.tta,
        postprocess=run.postprocess,
        backend=run.backend,
        precision=run.precision,
    )


class Segmenter:
    """A loaded model with its preprocessing: uint8 RGB arrays (or files) in, probability maps and masks out."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        device: str | torch.device = "auto",
        threshold: float | None = None,
        tta: bool = False,
        postprocess: bool = True,
        backend: str = "torch",
        precision: str = "auto",
    ):
        self.notes: list[str] = []  # settings that were ignored, in words
        check_backend(backend)
        if backend == "onnx":
            from skinseg.inference.onnx import OnnxRunner, cached_onnx

            self.device = torch.device("cpu")
            self.model = OnnxRunner(cached_onnx(model_path))
            self.model_file = self.model.path  # how errors about the model's output name it
            self.info = self.model.info
            self.precision = resolve_precision("fp32", self.device, job="infer", size=self.info.input_size)
            if precision not in ("auto", "fp32"):
                self.notes.append(f"`precision={precision}` is ignored with `backend=onnx` (ONNX Runtime runs fp32)")
            if str(device) not in ("auto", "cpu"):
                self.notes.append(f"`device={device}` is ignored with `backend=onnx` (ONNX Runtime runs on the CPU)")
        else:
            self.device = device if isinstance(device, torch.device) else resolve_device(device)
            model, self.info = load_model(model_path, self.device)
            self.model_file = model_file(model_path)
            self.precision = resolve_precision(precision, self.device, job="infer", size=self.info.input_size)
            self.notes += self.precision.notes
            self.model = model.to(memory_format=self.precision.memory_format).eval()  # type: ignore[call-overload]
        self.threshold = self.info.threshold if threshold is None else threshold
        check_threshold(self.threshold)
        self.tta = tta
        self.postprocess = postprocess
        self.mean = torch.tensor(self.info.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(self.info.std, device=self.device).view(1, 3, 1, 1)

    def facts(self, model_name: str | None) -> list[tuple[str, Any]]:
        """What a report says of the model and how it was run, as (label, value) rows."""
        info = self.info
        trained = ", ".join(f"{k} {v}" for k, v in info.training.items() if not isinstance(v, dict | list))
        return [
            ("model", model_label(model_name)),
            ("architecture", f"{info.config.architecture}, input {info.input_size} px, skinseg {info.version}"),
            ("training", trained or None),
            ("threshold", f"{self.threshold:g}"),
            ("boundary offset", f"{info.boundary_offset:+g} of the diameter" if info.boundary_offset else None),
            ("TTA", "on (4 flips)" if self.tta else "off"),
            ("post-processing", "largest lesion, holes filled" if self.postprocess else "off"),
            ("precision", self.precision.name),
        ]

    def _to_input(self, model_input: np.ndarray) -> torch.Tensor:
        """A uint8 (size, size, 3) model input, normalised, on the device."""
        x = torch.from_numpy(np.ascontiguousarray(model_input)).to(self.device).permute(2, 0, 1)[None].float()
        return (x - self.mean) / self.std

    def _logits(self, batch: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            return self.model(batch.contiguous(memory_format=self.precision.memory_format)).float()

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        probs = torch.sigmoid(self._logits(batch))
        if self.tta:  # average over horizontal, vertical and both flips
            for dims in ((-1,), (-2,), (-2, -1)):
                probs += torch.sigmoid(self._logits(batch.flip(dims))).flip(dims)
            probs /= 4
        return probs

    def probabilities(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Lesion probability maps of RGB uint8 arrays, each map the size of its image. Any other array is
        refused (ConfigError, a ValueError): a float or 16-bit one, converted, gave wrong masks without a word."""
        if hasattr(images, "shape"):  # an array: a stack of images (n, h, w, 3) is a list of them; one is not
            check_setting(len(images.shape) == 4, "`images` is a list of images: give one image as [image]")
            images = list(images)
        for image in images:
            check_rgb_image(image)
        size = self.info.input_size
        return self.probabilities_of([resize_rgb(image, size) for image in images], [i.shape[:2] for i in images])

    def read(self, path: str | Path) -> tuple[np.ndarray, tuple[int, int]]:
        """A file's model input and its image's (height, width): decoded as prepare decodes it for training."""
        model_input, (width, height) = decode_rgb(path, self.info.input_size)
        return model_input, (height, width)

    @torch.inference_mode()
    def probabilities_of(self, model_inputs: list[np.ndarray], shapes: list[tuple[int, int]]) -> list[np.ndarray]:
        """Lesion probability maps from model inputs (size x size uint8, as `read` or resize_rgb make them),
        each map resized back to its image's (height, width) in `shapes`."""
        if not model_inputs:
            return []
        probs = self._forward(torch.cat([self._to_input(x) for x in model_inputs]))
        if not bool(torch.isfinite(probs).all()):  # NaN would read as "no lesion" everywhere, without a word
            raise SkinsegError(
                "the model gave probabilities that are NaN or infinite: it cannot be used", self.model_file
            )
        result = []
        for prob, shape in zip(probs, shapes, strict=True):
            full = F.interpolate(prob[None], size=tuple(shape), mode="bilinear", align_corners=False)
            result.append(full[0, 0].cpu().numpy())
        return result

    def masks_from(self, probabilities: list[np.ndarray]) -> list[np.ndarray]:
        masks = [prob > self.threshold for prob in probabilities]
        if self.postprocess:
            masks = [postprocess_mask(m) for m in masks]
        if self.info.boundary_offset:
            masks = [offset_boundary(m, self.info.boundary_offset) for m in masks]
        return masks

    def masks(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return self.masks_from(self.probabilities(images))
