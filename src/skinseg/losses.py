"""Segmentation losses on logits: soft Dice, BCE, and their sum."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("dice_bce", "dice", "bce")


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean per-image soft Dice (images with an empty mask and an empty prediction score 1)."""
    probs = torch.sigmoid(logits.float()).flatten(1)
    target = target.float().flatten(1)
    intersection = (probs * target).sum(1)
    dice = (2 * intersection + eps) / (probs.sum(1) + target.sum(1) + eps)
    return 1 - dice.mean()


def segmentation_loss(name: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if name == "dice":
        return soft_dice_loss(logits, target)
    bce = F.binary_cross_entropy_with_logits(logits.float(), target.float())
    if name == "bce":
        return bce
    if name == "dice_bce":
        return bce + soft_dice_loss(logits, target)
    raise ValueError(f"unknown loss '{name}'; choose one of {', '.join(LOSSES)}")
