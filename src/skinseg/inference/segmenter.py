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

from skinseg.errors import SkinsegError
from skinseg.inference.postprocess import postprocess_mask
from skinseg.models.weights import load_model
from skinseg.runtime.device import resolve_device
from skinseg.runtime.precision import resolve_precision


class Segmenter:
    """A loaded model with its preprocessing: uint8 RGB arrays in, probability maps out."""

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
        if backend == "onnx":
            from skinseg.inference.onnx import OnnxRunner, cached_onnx

            self.device = torch.device("cpu")
            self.precision = resolve_precision("fp32", self.device, job="infer")
            if precision not in ("auto", "fp32"):
                self.notes.append(f"--precision {precision} is ignored with --backend onnx (ONNX Runtime runs fp32)")
            self.model = OnnxRunner(cached_onnx(model_path))
            self.info = self.model.info
        elif backend == "torch":
            self.device = device if isinstance(device, torch.device) else resolve_device(device)
            model, self.info = load_model(model_path, self.device)
            self.precision = resolve_precision(precision, self.device, job="infer", size=self.info.input_size)
            self.notes += self.precision.notes
            self.model = model.to(memory_format=self.precision.memory_format).eval()  # type: ignore[call-overload]
        else:
            raise SkinsegError(f"unknown backend '{backend}'; choose torch or onnx")
        self.threshold = self.info.threshold if threshold is None else threshold
        if not 0.0 < self.threshold < 1.0:
            raise SkinsegError(f"threshold must be between 0 and 1, got {self.threshold}")
        self.tta = tta
        self.postprocess = postprocess
        self.mean = torch.tensor(self.info.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(self.info.std, device=self.device).view(1, 3, 1, 1)

    def facts(self, model_name: str | None) -> list[tuple[str, Any]]:
        """What a report says of the model and how it was run, as (label, value) rows."""
        info = self.info
        trained = ", ".join(f"{k} {v}" for k, v in info.training.items() if not isinstance(v, dict | list))
        return [
            ("model", model_name or "bundled model"),
            ("architecture", f"{info.config.architecture}, input {info.input_size} px, skinseg {info.version}"),
            ("training", trained or None),
            ("threshold", f"{self.threshold:g}"),
            ("TTA", "on (4 flips)" if self.tta else "off"),
            ("post-processing", "largest lesion, holes filled" if self.postprocess else "off"),
            ("precision", self.precision.name),
        ]

    def _to_input(self, image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(image).to(self.device).permute(2, 0, 1)[None].float()
        size = self.info.input_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
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

    @torch.inference_mode()
    def probabilities(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Lesion probability maps, each the size of its image."""
        if not images:
            return []
        probs = self._forward(torch.cat([self._to_input(image) for image in images]))
        result = []
        for prob, image in zip(probs, images, strict=False):
            full = F.interpolate(prob[None], size=image.shape[:2], mode="bilinear", align_corners=False)
            result.append(full[0, 0].cpu().numpy())
        return result

    def masks_from(self, probabilities: list[np.ndarray]) -> list[np.ndarray]:
        masks = [prob > self.threshold for prob in probabilities]
        return [postprocess_mask(m) for m in masks] if self.postprocess else masks

    def masks(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return self.masks_from(self.probabilities(images))
