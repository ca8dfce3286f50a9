"""`skinseg segment`: masks for images of any size, one file or thousands.

Each image is resized to the model's input size, the probabilities are resized back to the image's own
size and thresholded there, so a mask always matches its image pixel for pixel.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from skinseg.config import SegmentConfig
from skinseg.data.images import IMAGE_SUFFIXES, load_rgb, save_mask_png
from skinseg.device import resolve_device
from skinseg.errors import SkinsegError
from skinseg.weights import load_model

MASK_SUFFIX = "_segmentation.png"


class Segmenter:
    """A loaded model with its preprocessing: uint8 RGB arrays in, probability maps out."""

    def __init__(self, model_path: str | Path | None = None, device: str | torch.device = "auto",
                 threshold: float | None = None):
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.model, self.info = load_model(model_path, self.device)
        self.threshold = self.info.threshold if threshold is None else threshold
        if not 0.0 < self.threshold < 1.0:
            raise SkinsegError(f"threshold must be between 0 and 1, got {self.threshold}")
        self.mean = torch.tensor(self.info.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(self.info.std, device=self.device).view(1, 3, 1, 1)

    def _to_input(self, image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1)[None].float()
        size = self.info.input_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean) / self.std

    @torch.inference_mode()
    def probabilities(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Lesion probability maps, each the size of its image."""
        if not images:
            return []
        batch = torch.cat([self._to_input(image) for image in images])
        probs = torch.sigmoid(self.model(batch).float())
        result = []
        for prob, image in zip(probs, images):
            full = F.interpolate(prob[None], size=image.shape[:2], mode="bilinear", align_corners=False)
            result.append(full[0, 0].cpu().numpy())
        return result

    def masks(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return [prob > self.threshold for prob in self.probabilities(images)]


def collect_inputs(inputs: tuple[Path, ...] | list[Path]) -> list[Path]:
    """Image files from files, folders (not recursive) and glob patterns, in order, without repeats."""
    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not
                            p.name.startswith("."))
        elif item.exists():
            found.append(item)
        elif any(ch in str(item) for ch in "*?["):
            found += sorted(Path(p) for p in glob.glob(str(item)) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        else:
            raise SkinsegError("input not found", item)
    unique = list(dict.fromkeys(found))
    if not unique:
        raise SkinsegError(f"no images found in {', '.join(str(i) for i in inputs)}")
    return unique


def output_paths(inputs: list[Path], output: Path) -> list[Path]:
    """One input and an output with an image suffix: that file. Otherwise a folder of <stem>_segmentation.png."""
    if len(inputs) == 1 and output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir():
        return [output]
    if output.exists() and not output.is_dir():
        raise SkinsegError("output must be a folder when segmenting several images", output)
    targets = [output / f"{path.stem}{MASK_SUFFIX}" for path in inputs]
    seen: dict[Path, Path] = {}
    for source, target in zip(inputs, targets):
        if target in seen:
            raise SkinsegError(f"two inputs would write the same mask ({seen[target]} and {source})", target)
        seen[target] = source
    return targets


@dataclass
class SegmentResult:
    output: Path
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def segment_paths(config: SegmentConfig, console=None) -> SegmentResult:
    """Segment every input image; unreadable ones are reported and the rest go on."""
    from skinseg.figures import overlay_image

    inputs = collect_inputs(config.inputs)
    targets = output_paths(inputs, config.output)
    resolved_inputs = {p.resolve() for p in inputs}
    result = SegmentResult(config.output)
    todo = []
    for source, target in zip(inputs, targets):
        if target.resolve() in resolved_inputs:
            raise SkinsegError("refusing to overwrite an input image with its mask", target)
        if target.exists() and not config.overwrite:
            result.failed.append((source, f"output {target} exists (use --overwrite to replace it)"))
        else:
            todo.append((source, target))
    segmenter = Segmenter(config.model, config.device, config.threshold)

    from skinseg.progress import progress_bar
    from rich.console import Console

    with progress_bar(console or Console(quiet=True), "Segmenting") as advance:
        for start in range(0, len(todo), config.batch_size):
            chunk = todo[start:start + config.batch_size]
            images, ready = [], []
            for source, target in chunk:
                try:
                    images.append(load_rgb(source))
                    ready.append((source, target))
                except SkinsegError as exc:
                    result.failed.append((source, str(exc).removeprefix(f"{source}: ")))
            for (source, target), image, mask in zip(ready, images, segmenter.masks(images)):
                save_mask_png(mask, target)
                if config.overlay:
                    from skinseg.fileio import atomic_path
                    from PIL import Image

                    with atomic_path(target.with_name(f"{source.stem}_overlay.png")) as tmp:
                        Image.fromarray(overlay_image(image, mask)).save(tmp, format="PNG")
                result.written.append(target)
            advance(min(start + config.batch_size, len(todo)), len(todo))
    return result
