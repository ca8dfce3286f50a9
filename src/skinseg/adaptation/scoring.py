"""Scoring a model on labelled examples as `segment` would use it: probabilities at the model's size, resized
to each truth mask's size, thresholded, post-processed, and Dice per image."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from skinseg.inference.postprocess import postprocess_mask
from skinseg.models.layers import SegmentationModel
from skinseg.runtime.precision import Precision

# The thresholds a calibration may pick from: the model's own 0.5 and steps either side.
THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)


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


def dice_scores(probs: list[np.ndarray], truths: list[np.ndarray], threshold: float) -> np.ndarray:
    """Per-image Dice of the post-processed masks at `threshold`."""
    return np.array([dice(postprocess_mask(p > threshold), t) for p, t in zip(probs, truths, strict=True)])


def threshold_table(
    probs: list[np.ndarray], truths: list[np.ndarray], thresholds: tuple[float, ...] = THRESHOLDS
) -> np.ndarray:
    """Per-image Dice at each of `thresholds`: shape (len(thresholds), N)."""
    return np.stack([dice_scores(probs, truths, t) for t in thresholds])
