"""One fine-tune of a starting model on a few labelled images: the recipe and the loop.

The recipe is plain data, so that a model file can record it and a benchmark can vary it. Two loops:

- `tail`: the top of the decoder and the heads alone. The rest of the network (the trunk) is run once per image
  and per flip or quarter turn, its features kept, and the tail trained on them: a step costs a sixth of a
  whole forward pass, so a CPU affords hundreds.
- `all` / `decoder`: every weight, or the decoder's, on augmented batches through the whole network.

Both pull the trained weights toward where they started (L2-SP, Li et al. 2018) and return a new model.
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
TRAINED_PARTS.register("tail")(
    lambda model, name: name.startswith((f"upsamples.{len(model.upsamples) - 1}.", "top.", "segmentation_heads."))  # type: ignore[arg-type]
)
TRAINED_PARTS.register("decoder")(
    lambda model, name: name.split(".")[0] in ("upsamples", "localization", "top", "segmentation_heads")
)
TRAINED_PARTS.register("all")(lambda model, name: True)

StepCallback = Callable[[int, int], None]
Normalisation = tuple[torch.Tensor, torch.Tensor]  # mean and std, (1, 3, 1, 1), on the 0-255 scale


@dataclass(frozen=True)
class Recipe:
    """How one fine-tune runs: `steps` optimiser steps of `batch_size` images."""

    trained: str = "tail"  # TRAINED_PARTS
    lr: float = 1e-3
    steps: int = 200
    batch_size: int = 8
    warmup_steps: int = 10
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
    trunk: TrunkCache | None = None,
) -> SegmentationModel:
    """A copy of `start` fine-tuned on `inputs` (uint8, N x S x S x 3) and `masks` (bool, N x S x S). A tail
    recipe reads the trunk's features from `trunk` (made by `TrunkCache`) where given."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = copy.deepcopy(start).train()
    part = TRAINED_PARTS.get_checked(recipe.trained)
    trained = [p for name, p in model.named_parameters() if part(model, name)]
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(part(model, name))
    anchors = [p.detach().clone() for p in trained]
    optimizer = torch.optim.AdamW(trained, lr=recipe.lr, weight_decay=0.0)
    if recipe.trained == "tail":
        cache = trunk or TrunkCache(start, inputs, masks, normalisation, precision)
        batches = cache.batches(recipe.batch_size, recipe.steps, generator)
    else:
        batches = _augmented_batches(inputs, masks, normalisation, precision, recipe, generator)
    for step in range(recipe.steps):
        features, targets = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, recipe.steps, recipe.lr, recipe.warmup_steps, "cosine")
        with precision.autocast():
            logits = model.tail(features) if recipe.trained == "tail" else model(features)  # type: ignore[operator]
        loss = dice_bce_loss(logits, targets)
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
    for rows in order.split(recipe.batch_size):
        x, y = augment_batch(images[rows].float() / 255, targets[rows].float())
        yield ((x * 255 - mean) / std).contiguous(memory_format=precision.memory_format), y


# The eight flips and quarter turns of a square image, as (quarter turns, flip left-right).
DIHEDRAL = tuple((turns, flip) for turns in range(4) for flip in (False, True))


def dihedral(x: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    x = torch.rot90(x, turns, dims=(-2, -1))
    return x.flip(-1) if flip else x


class TrunkCache:
    """The trunk's features of every image under each of the eight flips and quarter turns (stored in bf16),
    and the masks turned alike: what a tail fine-tune trains on, computed once and shared by its folds."""

    def __init__(
        self,
        model: SegmentationModel,
        inputs: np.ndarray,
        masks: np.ndarray,
        normalisation: Normalisation,
        precision: Precision,
        on_item: StepCallback | None = None,
    ):
        from skinseg.models.improved_unet import TrunkFeatures

        self._features = TrunkFeatures
        mean, std = normalisation
        images = (torch.from_numpy(inputs).permute(0, 3, 1, 2).float() - mean) / std
        targets = torch.from_numpy(masks)[:, None]
        parts: list[list[torch.Tensor]] = []
        self.masks: list[torch.Tensor] = []
        self.size: tuple[int, int] = (0, 0)
        model = model.eval()
        with torch.inference_mode():
            for index, (turns, flip) in enumerate(DIHEDRAL):
                x = dihedral(images, turns, flip).contiguous(memory_format=precision.memory_format)
                with precision.autocast():
                    trunk = model.trunk(x)  # type: ignore[operator]
                self.size = trunk.size
                parts.append([t.to(torch.bfloat16) for t in (*trunk.headed, trunk.last, trunk.skip)])
                self.masks.append(dihedral(targets, turns, flip))
                if on_item is not None:
                    on_item(index + 1, len(DIHEDRAL))
        self.tensors = [torch.cat(level) for level in zip(*parts, strict=True)]
        self.all_masks = torch.cat(self.masks)
        self.count = len(inputs)

    def subset(self, rows: np.ndarray) -> TrunkCache:
        """The cache of some of the images (a fold's training images), sharing no copy it does not need."""
        picked = torch.cat([torch.as_tensor(rows) + v * self.count for v in range(len(DIHEDRAL))])
        other = copy.copy(self)
        other.tensors = [t[picked] for t in self.tensors]
        other.all_masks = self.all_masks[picked]
        other.count = len(rows)
        return other

    def batches(self, batch_size: int, steps: int, generator: torch.Generator):
        order = _batch_order(len(self.all_masks), batch_size * steps, generator)
        for rows in order.split(batch_size):
            *headed, last, skip = (t[rows].float() for t in self.tensors)
            yield self._features(headed, last, skip, self.size), self.all_masks[rows].float()
