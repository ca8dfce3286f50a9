"""What a run trains on: every set's training and validation arrays, the normalisation of their mixture, the
order in which an epoch draws the sets' images, and the batches made from them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from skinseg.data.arrays import IN_MEMORY_SHARE, SplitArrays, available_memory
from skinseg.data.dataset import PreparedData, set_name
from skinseg.errors import SkinsegError
from skinseg.runtime import distributed
from skinseg.runtime.precision import Precision
from skinseg.training.augment import augment_batch


@dataclass
class DataSet:
    """One data set's part of a run: its name, its share of every epoch and its validation split."""

    name: str
    source: str
    weight: float
    train_images: int
    val: SplitArrays


@dataclass
class TrainData:
    """The training images of every set (one SplitArrays, sets in order), each set's validation split (this
    rank's share) and the normalisation."""

    train: SplitArrays
    sets: list[DataSet]
    mean: torch.Tensor  # (1, 3, 1, 1), 0-255 scale
    std: torch.Tensor

    def normalise(self, images01: torch.Tensor) -> torch.Tensor:
        return (images01 * 255 - self.mean) / self.std


def set_names(sets: list[PreparedData]) -> list[str]:
    """Short unique names of the data sets (their raw folders' names), for metric columns and reports."""
    names: list[str] = []
    for prepared in sets:
        name = set_name(prepared.root, prepared.manifest)
        names.append(name if name not in names else f"{name}-{len(names) + 1}")
    return names


def combined_normalisation(sets: list[PreparedData], weights: tuple[float, ...]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the mixture that training draws (each set's statistics, weighted)."""
    means = np.array([p.mean for p in sets])
    stds = np.array([p.std for p in sets])
    w = np.array(weights)[:, None]
    mean = (w * means).sum(0)
    second = (w * (stds**2 + means**2)).sum(0)
    return mean.tolist(), np.sqrt(np.maximum(second - mean**2, 1e-6)).tolist()


def load_data(
    prepared: PreparedData | list[PreparedData],
    device: torch.device,
    max_train_images: int = 0,
    context: distributed.Context = distributed.Context(),
    weights: tuple[float, ...] = (),
) -> TrainData:
    """The training splits (each capped for quick runs) and this rank's share of every validation split."""
    sets = prepared if isinstance(prepared, list) else [prepared]
    weights = weights or (1.0 / len(sets),) * len(sets)
    if len({p.size for p in sets}) > 1:
        sizes = ", ".join(f"{p.root} is {p.size} px" for p in sets)
        raise SkinsegError(f"the data sets were prepared at different sizes ({sizes}); prepare them at one `size`")
    train_rows = [p.indices("train")[: max_train_images or None] for p in sets]
    for p, rows in zip(sets, train_rows, strict=True):
        if len(rows) == 0:
            raise SkinsegError("the prepared dataset has no training images", p.root)
    val_rows = [p.indices("val")[context.rank :: context.world] for p in sets]
    image_bytes = sets[0].size ** 2 * 4
    needed = sum(len(r) for r in train_rows + val_rows) * image_bytes
    in_memory = needed <= IN_MEMORY_SHARE * available_memory()
    mean, std = combined_normalisation(sets, weights)
    return TrainData(
        SplitArrays(list(zip(sets, train_rows, strict=True)), device, in_memory),
        [
            DataSet(
                name, str(p.manifest.get("source") or p.root), w, len(tr), SplitArrays([(p, vr)], device, in_memory)
            )
            for name, p, w, tr, vr in zip(set_names(sets), sets, weights, train_rows, val_rows, strict=True)
        ],
        torch.tensor(mean, device=device).view(1, 3, 1, 1),
        torch.tensor(std, device=device).view(1, 3, 1, 1),
    )


def epoch_rows(data: TrainData) -> torch.Tensor:
    """The order in which an epoch visits the training rows: as many draws as there are training images,
    each set's share of them per its weight, every set's images without repeats until all have been drawn.
    With one set, a permutation. Uses the global generator (seeded per epoch by the caller)."""
    sizes = [s.train_images for s in data.sets]
    if len(sizes) == 1:
        return torch.randperm(sizes[0])
    total = sum(sizes)
    quotas = [s.weight * total for s in data.sets]
    counts = [int(q) for q in quotas]
    for k in sorted(range(len(sizes)), key=lambda k: counts[k] - quotas[k])[: total - sum(counts)]:
        counts[k] += 1  # largest remainders
    parts = []
    for start, size, count in zip(data.train.starts, sizes, counts, strict=False):
        repeats = -(-count // size)
        parts.append(torch.cat([torch.randperm(size) for _ in range(repeats)])[:count] + int(start))
    order = torch.cat(parts)
    return order[torch.randperm(len(order))]


def to_float(images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 NHWC / NHW -> float NCHW in [0, 1] and float N1HW."""
    return images.permute(0, 3, 1, 2).float().div_(255), masks.unsqueeze(1).float()


def training_batch(
    data: TrainData, rows: torch.Tensor, augment: bool, precision: Precision
) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised, (optionally) augmented images and masks of `rows`, in the run's memory format."""
    x, y = to_float(*data.train.take(rows))
    if augment:
        x, y = augment_batch(x, y)
    return data.normalise(x).contiguous(memory_format=precision.memory_format), y
