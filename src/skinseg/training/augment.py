"""Batched augmentation on tensors, on whatever device the batch is on (the GPU never waits for a loader).

Geometry: random flips, 90-degree turns, free rotation and scale, done as one affine resampling of image
and mask together. Colour: brightness, contrast, saturation and gamma jitter on the image alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    return torch.rand(n, device=device) * (high - low) + low


def augment_batch(
    images: torch.Tensor, masks: torch.Tensor, scale: tuple[float, float] = (0.8, 1.25), max_rotation_deg: float = 180.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """images: float (N, 3, H, W) in [0, 1]; masks: float (N, 1, H, W) in {0, 1}."""
    n, device = images.shape[0], images.device
    angle = _uniform(n, -max_rotation_deg, max_rotation_deg, device) * (math.pi / 180)
    zoom = torch.exp(_uniform(n, math.log(scale[0]), math.log(scale[1]), device))
    flip = torch.where(torch.rand(n, device=device) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    masks = F.grid_sample(masks, grid, mode="bilinear", padding_mode="reflection", align_corners=False) > 0.5

    brightness = _uniform(n, -0.1, 0.1, device).view(n, 1, 1, 1)
    contrast = _uniform(n, 0.8, 1.2, device).view(n, 1, 1, 1)
    saturation = _uniform(n, 0.8, 1.2, device).view(n, 1, 1, 1)
    gamma = torch.exp(_uniform(n, math.log(0.8), math.log(1.25), device)).view(n, 1, 1, 1)
    grey = images.mean(dim=1, keepdim=True)
    images = grey + (images - grey) * saturation
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = (images - mean) * contrast + mean + brightness
    images = images.clamp(0, 1) ** gamma
    return images, masks.to(images.dtype)
