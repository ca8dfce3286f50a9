"""Synthetic lesions whose measurements are known exactly: shapes, painted in given colours on skin, under a
lighting cast that the code measuring them is not told."""

from __future__ import annotations

import numpy as np
from skimage.color import lab2rgb

from skinseg.measurement.colour import PALETTE, SKIN_REFERENCE, linear

SIZE = 240


def grid(size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[:size, :size].astype(float)


def disc(radius: float, centre: tuple[float, float] = (SIZE / 2, SIZE / 2), size: int = SIZE) -> np.ndarray:
    ys, xs = grid(size)
    return (ys - centre[0]) ** 2 + (xs - centre[1]) ** 2 <= radius**2


def ellipse(a: float, b: float, angle_degrees: float, size: int = SIZE) -> np.ndarray:
    ys, xs = grid(size)
    t = np.radians(angle_degrees)
    u = (xs - size / 2) * np.cos(t) + (ys - size / 2) * np.sin(t)
    v = -(xs - size / 2) * np.sin(t) + (ys - size / 2) * np.cos(t)
    return (u / a) ** 2 + (v / b) ** 2 <= 1


def l_shape(long_arm: int = 100, short_arm: int = 100, width: int = 36, size: int = SIZE) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    top, left = (size - long_arm) // 2, (size - short_arm) // 2
    mask[top : top + long_arm, left : left + width] = True
    mask[top + long_arm - width : top + long_arm, left : left + short_arm] = True
    return mask


def palette_srgb(name: str, shift: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """A shade of a palette colour (moved by `shift` in CIELAB), sRGB 0-1, as it looks beside the reference skin."""
    lab = np.array(PALETTE[name]) + np.array(shift)
    return np.clip(lab2rgb(lab[None, None])[0, 0], 0, 1)


def paint(regions: list[tuple[np.ndarray, np.ndarray]], cast=(1.0, 1.0, 1.0), noise: float = 2.0, seed: int = 0):
    """An uint8 image: the reference skin, each (mask, sRGB colour) painted in turn, the whole multiplied by
    `cast` in linear light (a coloured light, or another skin tone), plus a little noise."""
    image = np.broadcast_to(linear(np.array(SKIN_REFERENCE)), (SIZE, SIZE, 3)).copy()
    for mask, colour in regions:
        image[mask] = linear(np.asarray(colour))
    image = np.clip(image * np.asarray(cast), 0, 1)
    srgb = np.where(image <= 0.0031308, image * 12.92, 1.055 * image ** (1 / 2.4) - 0.055)
    noisy = srgb * 255 + np.random.default_rng(seed).normal(0, noise, srgb.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
