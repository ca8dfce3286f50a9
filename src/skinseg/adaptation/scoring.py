"""Scoring a model on labelled examples as `segment` would use it: probabilities at the model's size, resized
to each truth mask's size, thresholded, post-processed, the outline offset, and Dice per image, for every
setting (threshold, boundary offset) that a calibration may pick."""

from __future__ import annotations

from itertools import product

import numpy as np
import torch
import torch.nn.functional as F

from skinseg.inference.postprocess import offset_boundaries, postprocess_mask
from skinseg.models.layers import SegmentationModel
from skinseg.runtime.precision import Precision

# A small grid: with 20 images, every setting more is one more chance to fit noise.
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
# The outline moved by these fractions of the lesion's equivalent diameter (ModelInfo.boundary_offset).
OFFSETS = (-0.06, -0.04, -0.02, 0.0, 0.02, 0.04)
Setting = tuple[float, float]  # (threshold, boundary offset)


def settings_with(threshold: float, offset: float) -> tuple[Setting, ...]:
    """Every (threshold, offset) compared: the grids, with the starting model's own values among them."""
    thresholds = sorted({*THRESHOLDS, threshold})
    offsets = sorted({*OFFSETS, offset})
    return tuple(product(thresholds, offsets))


@torch.inference_mode()
def probabilities(
    model: SegmentationModel,
    inputs: np.ndarray,
    shapes: list[tuple[int, int]],
    normalisation: tuple[torch.Tensor, torch.Tensor],
    precision: Precision,
    batch_size: int = 8,
) -> list[np.ndarray]:
    """Lesion probabilities of uint8 model inputs (N, S, S, 3), each resized to its (height, width)."""
    model.eval()
    device = next(model.parameters()).device
    mean, std = (t.to(device) for t in normalisation)
    result: list[np.ndarray] = []
    for start in range(0, len(inputs), batch_size):
        x = torch.from_numpy(inputs[start : start + batch_size]).to(device).permute(0, 3, 1, 2).float()
        x = ((x - mean) / std).contiguous(memory_format=precision.memory_format)
        with precision.autocast():
            probs = torch.sigmoid(model(x).float())
        for prob, shape in zip(probs, shapes[start : start + batch_size], strict=True):
            full = F.interpolate(prob[None], size=tuple(shape), mode="bilinear", align_corners=False)
            result.append(full[0, 0].cpu().numpy())
    return result


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 where both are empty (the ISIC scorer's rule)."""
    total = int(pred.sum()) + int(truth.sum())
    return 1.0 if total == 0 else 2.0 * int((pred & truth).sum()) / total


def settings_table(probs: list[np.ndarray], truths: list[np.ndarray], settings: tuple[Setting, ...]) -> np.ndarray:
    """Per-image Dice at each setting: shape (len(settings), N). Each threshold's mask is post-processed once
    and its distances computed once for all its offsets."""
    thresholds = sorted({t for t, _ in settings})
    table = np.empty((len(settings), len(probs)))
    for column, (prob, truth) in enumerate(zip(probs, truths, strict=True)):
        for threshold in thresholds:
            rows = [i for i, (t, _) in enumerate(settings) if t == threshold]
            mask = postprocess_mask(prob > threshold)
            offsets = tuple(settings[i][1] for i in rows)
            for row, moved in zip(rows, offset_boundaries(mask, offsets), strict=True):
                table[row, column] = dice(moved, truth)
    return table
