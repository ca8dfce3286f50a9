"""Segmentation losses on logits: soft Dice, BCE, and their sum; chosen by name from LOSSES."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from skinseg.registry import Registry

if TYPE_CHECKING:
    import torch

# torch is imported where a loss is computed, so that the help of `train` lists the names without it.
Loss = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]
LOSSES: Registry[Loss] = Registry("loss")


@LOSSES.register("dice")
def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean per-image soft Dice (images with an empty mask and an empty prediction score 1)."""
    import torch

    probs = torch.sigmoid(logits.float()).flatten(1)
    target = target.float().flatten(1)
    intersection = (probs * target).sum(1)
    dice = (2 * intersection + eps) / (probs.sum(1) + target.sum(1) + eps)
    return 1 - dice.mean()


@LOSSES.register("bce")
def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


@LOSSES.register("dice_bce")
def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return bce_loss(logits, target) + soft_dice_loss(logits, target)
