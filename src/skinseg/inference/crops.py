"""Lesion crops for classifiers: the lesion's box plus a margin, cut from the full-resolution image."""

from __future__ import annotations

import numpy as np
from PIL import Image

from skinseg.measurement.shape import bounding_box


def crop_box(mask: np.ndarray, margin: float = 0.1, square: bool = False) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), end exclusive, of the lesion's bounding box grown by `margin` of its width and height on
    each side; with `square`, widened to a square around the box's centre. Always inside the image: a box that
    would cross an edge is moved back in, and cut only where the image is smaller than it. None: no lesion."""
    box = bounding_box(mask)
    if box is None:
        return None
    left, top, right, bottom = box
    height, width = mask.shape
    want_w, want_h = (right - left) * (1 + 2 * margin), (bottom - top) * (1 + 2 * margin)
    if square:
        want_w = want_h = max(want_w, want_h)
    x0, x1 = _span((left + right) / 2, want_w, width)
    y0, y1 = _span((top + bottom) / 2, want_h, height)
    return x0, y0, x1, y1


def _span(centre: float, length: float, limit: int) -> tuple[int, int]:
    """An interval of `length` (rounded) around `centre`, moved inside [0, limit), cut to it if longer."""
    length = min(limit, max(1, round(length)))
    start = min(max(0, round(centre - length / 2)), limit - length)
    return start, start + length


def lesion_crop(
    image: np.ndarray, mask: np.ndarray, margin: float = 0.1, size: int | None = None, square: bool = False
) -> np.ndarray | None:
    """The crop of `crop_box` from `image` (uint8 RGB), resized so that its longer side is `size` when given.
    None: no lesion."""
    box = crop_box(mask, margin, square)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    crop = image[y0:y1, x0:x1]
    if size is None:
        return np.ascontiguousarray(crop)
    scale = size / max(crop.shape[:2])
    shape = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(shape, Image.Resampling.LANCZOS))
