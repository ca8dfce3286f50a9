"""One fine-tune of a starting model on a few labelled images: the recipe and the loop.

The recipe is plain data, so that a model file can record it and a benchmark can vary it. The loop reads top
to bottom: a copy of the starting model, the part the recipe names trained with AdamW on augmented batches
(training's own augmentation and loss), optionally pulled toward the starting weights (L2-SP, Li et al. 2018).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from skinseg.models.layers import SegmentationModel
from skinseg.registry import Registry
from skinseg.runtime.precision import Precision
from skinseg.training.augment import augment_batch
from skinseg.training.losses import dice_bce_loss
from skinseg.training.optim import lr_at

# Which weights a fine-tune trains: a predicate on the model and a parameter's name.
TRAINED_PARTS: Registry[Callable[[torch.nn.Module, str], bool]] = Registry("trained part")
TRAINED_PARTS.register("decoder")(
    lambda model, name: name.split(".")[0] in ("upsamples", "localization", "top", "segmentation_heads")
)
TRAINED_PARTS.register("all")(lambda model, name: True)

StepCallback = Callable[[int, int], None]
Normalisation = tuple[torch.Tensor, torch.Tensor]  # mean and std, (1, 3, 1, 1), on the 0-255 scale


@dataclass(frozen=True)
class Recipe:
    """How one fine-tune runs: `steps` optimiser steps of `batch_size` images."""

    trained: str = "all"  # TRAINED_PARTS
    lr: float = 1e-4
    steps: int = 60
    batch_size: int = 8
    warmup_steps: int = 5
    l2sp: float = 0.0  # weight of the summed squared distance of the trained weights from the starting ones

    def to_dict(self) -> dict:
        return asdict(self)


def finetune(
    start: SegmentationModel,
    inputs: np.ndarray,
    masks: np.ndarray,
    normalisation: Normalisation,
    recipe: Recipe,
    precision: Precision,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> SegmentationModel:
    """A copy of `start` fine-tuned on `inputs` (uint8, N x S x S x 3) and `masks` (bool, N x S x S)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = copy.deepcopy(start).train()
    part = TRAINED_PARTS.get_checked(recipe.trained)
    trained = [p for name, p in model.named_parameters() if part(model, name)]
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(part(model, name))
    anchors = [p.detach().clone() for p in trained]
    optimizer = torch.optim.AdamW(trained, lr=recipe.lr, weight_decay=0.0)
    batches = _augmented_batches(inputs, masks, normalisation, precision, recipe, generator)
    for step in range(recipe.steps):
        x, y = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, recipe.steps, recipe.lr, recipe.warmup_steps, "cosine")
        with precision.autocast():
            logits = model(x)
        loss = dice_bce_loss(logits, y)
        if recipe.l2sp:
            loss = loss + recipe.l2sp * sum(((p - a) ** 2).sum() for p, a in zip(trained, anchors, strict=True))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step(step + 1, recipe.steps)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def _batch_order(count: int, total: int, generator: torch.Generator) -> torch.Tensor:
    """`total` row numbers: each row once per epoch, in a fresh order each epoch."""
    epochs = math.ceil(total / count)
    return torch.cat([torch.randperm(count, generator=generator) for _ in range(epochs)])[:total]


def _augmented_batches(inputs, masks, normalisation: Normalisation, precision: Precision, recipe: Recipe, generator):
    images = torch.from_numpy(inputs).permute(0, 3, 1, 2)
    targets = torch.from_numpy(masks)[:, None]
    mean, std = normalisation
    order = _batch_order(len(inputs), recipe.batch_size * recipe.steps, generator)
    for rows in order.split(recipe.batch_size):  # augmented where the model is, as training does
        x, y = augment_batch(images[rows].to(mean.device).float() / 255, targets[rows].to(mean.device).float())
        yield ((x * 255 - mean) / std).contiguous(memory_format=precision.memory_format), y
