"""Dermoscopy-like synthetic images with exact masks, for tests and demos.

Skin-toned background with a soft vignette, one irregular dark lesion (a star-shaped blob with a
random, smooth radius), a little hair-like line clutter and noise. A tiny model learns these in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def synthetic_pair(
    size: int | tuple[int, int] = 64, rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One (image uint8 HxWx3, mask bool HxW) pair."""
    rng = np.random.default_rng(rng)
    height, width = (size, size) if isinstance(size, int) else size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    yy, xx = yy / height, xx / width

    skin = np.array([225, 180, 150]) * rng.uniform(0.85, 1.05) + rng.normal(0, 5, 3)
    vignette = 1.0 - 0.35 * ((yy - 0.5) ** 2 + (xx - 0.5) ** 2)
    image = skin[None, None, :] * vignette[..., None]

    cy, cx = rng.uniform(0.35, 0.65, 2)
    base_radius = rng.uniform(0.15, 0.3)
    angle = np.arctan2(yy - cy, xx - cx)
    radius = base_radius * np.ones_like(angle)
    for k in range(2, 6):
        radius += base_radius * rng.uniform(0.0, 0.12) * np.cos(k * angle + rng.uniform(0, 2 * np.pi))
    distance = np.hypot(yy - cy, xx - cx)
    mask = distance < radius

    lesion = np.array([110, 70, 50]) * rng.uniform(0.6, 1.1) + rng.normal(0, 5, 3)
    shade = np.clip(1.0 - distance / np.maximum(radius, 1e-6), 0, 1)[..., None]
    lesion_color = lesion[None, None, :] * (1.0 - 0.3 * shade)
    image = np.where(mask[..., None], lesion_color, image)

    for _ in range(rng.integers(0, 4)):  # hairs: thin dark lines crossing the image
        y0, x0, y1, x1 = rng.uniform(0, 1, 4)
        t = np.linspace(0, 1, 4 * max(height, width))
        ys = np.clip(((y0 + (y1 - y0) * t) * height).astype(int), 0, height - 1)
        xs = np.clip(((x0 + (x1 - x0) * t) * width).astype(int), 0, width - 1)
        image[ys, xs] = image[ys, xs] * 0.4

    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_synthetic_dataset(
    root: str | Path,
    count: int = 20,
    size: int = 64,
    seed: int = 0,
    mask_suffix: str = "_segmentation",
    image_format: str = "png",
) -> Path:
    """Write `count` pairs as root/images/case_NNN.<fmt> and root/masks/case_NNN<suffix>.png (0/255)."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        image, mask = synthetic_pair(size, rng)
        Image.fromarray(image).save(root / "images" / f"case_{index:03d}.{image_format}")
        Image.fromarray((mask * 255).astype(np.uint8)).save(root / "masks" / f"case_{index:03d}{mask_suffix}.png")
    return root
