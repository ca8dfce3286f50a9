"""Hairs: found with a black-hat filter (the grey closing minus the image: dark lines narrower than the closing's
window stand out), kept only where the dark trace is thin (it vanishes under a small opening) and long, as a
hair is and a dot or a globule is not.

The mask is found on the cut where colours are named (the lesion at most 128 pixels across; hairs are 1-3
pixels wide there), in the brightest channel, and widened by a pixel to take in the hair's blurred rim. Hair
pixels are left out of the colours: a hair is not the lesion's dark brown or black.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

CLOSING = 9  # the closing's square window (px, odd: centred): dark traces narrower than this stand out
DARKER = 18  # how much darker (0-255) than the closing a pixel must be to be part of a trace ...
RELATIVE = 0.15  # ... and by this share of the closing (a glare spot's rim is darker only by a small share)
THIN = 4  # a hair's trace is narrower than this (px): it vanishes under an opening by a square this wide ...
LONG = 30  # ... and its connected thin part is at least this long (the diagonal of its box, px)


def window_extreme(values: np.ndarray, size: int, axis: int, pick, border: str, origin: int = 0) -> np.ndarray:
    """scipy.ndimage's minimum_filter1d (`pick` np.minimum) or maximum_filter1d (np.maximum) of `values` along
    `axis`, with its `origin`, and its mode `border` 'reflect' or 'constant' (0): the same array, several times as
    fast for the small windows here. The window of output i is input i - (size // 2 + origin) onwards; it is
    picked from pieces of 1, 2, 4, ... pixels, each piece from two of half its length."""
    before = size // 2 + origin
    padded = _padded(values, axis, before, size - 1 - before, border)
    length = values.shape[axis]

    def part(array: np.ndarray, start: int, count: int) -> np.ndarray:
        return array[(slice(None),) * axis + (slice(start, start + count),)]

    pieces, width = {1: padded}, 1
    while 2 * width <= size:
        half = pieces[width]
        pieces[2 * width] = pick(part(half, 0, half.shape[axis] - width), part(half, width, half.shape[axis] - width))
        width *= 2
    widths = sorted(pieces, reverse=True)
    result, start = part(pieces[widths[0]], 0, length), widths[0]
    for width in widths[1:]:
        if size - start >= width:
            result = pick(result, part(pieces[width], start, length))
            start += width
    return result


def _padded(values: np.ndarray, axis: int, before: int, after: int, border: str) -> np.ndarray:
    """np.pad of `values` along `axis` by `before` and `after`, mode 'symmetric' (scipy's 'reflect') or zeros, by
    one concatenation: np.pad's own work was most of the filters' time on these small arrays."""
    length = values.shape[axis]
    if border == "reflect" and max(before, after) > length:  # reflections of reflections: np.pad's own way
        padding = [(0, 0)] * values.ndim
        padding[axis] = (before, after)
        return np.pad(values, padding, mode="symmetric")

    def edge(start: int, stop: int) -> np.ndarray:
        if border == "reflect":
            return np.flip(values[(slice(None),) * axis + (slice(start, stop),)], axis)
        shape = list(values.shape)
        shape[axis] = stop - start
        return np.zeros(shape, values.dtype)

    return np.concatenate([edge(0, before), values, edge(length - after, length)], axis)


def _square(values: np.ndarray, size: int, pick, border: str, origin: int = 0) -> np.ndarray:
    """window_extreme over a `size` square: along the rows, then the columns."""
    return window_extreme(window_extreme(values, size, 0, pick, border, origin), size, 1, pick, border, origin)


def hair_mask(value: np.ndarray) -> np.ndarray:
    """The hairs (bool) in the brightest channel (uint8) of an image whose lesion is about 128 pixels across: the
    long, thin traces of the black-hat filter, widened by a pixel. The brightest channel, as a hair is dark in
    all three and a vessel is bright in red."""
    closed = _square(_square(value, CLOSING, np.maximum, "reflect"), CLOSING, np.minimum, "reflect")
    depth = closed.astype(np.int16) - value
    dark = (depth > DARKER) & (depth > RELATIVE * closed)
    # not dots, globules, blotches: the binary opening by a THIN square (erosion, then dilation shifted back)
    opened = _square(_square(dark, THIN, np.minimum, "constant"), THIN, np.maximum, "constant", -(1 - THIN % 2))
    thin = dark & ~opened
    labels, count = ndimage.label(thin, structure=np.ones((3, 3)))
    if count == 0:
        return thin
    sides = np.array([(b[0].stop - b[0].start, b[1].stop - b[1].start) for b in ndimage.find_objects(labels)])
    hairy = np.hypot(sides[:, 0], sides[:, 1]) >= LONG  # hairs cross each other: their traces join, still thin
    if not hairy.any():
        return np.zeros_like(dark)
    hairs = np.concatenate([[False], hairy])[labels]
    widened = [window_extreme(hairs, 3, axis, np.maximum, "constant") for axis in (0, 1)]
    return widened[0] | widened[1]  # by a pixel up, down, left and right


def smoothed_without(maps: np.ndarray, sigma: float, left_out: np.ndarray | None) -> np.ndarray:
    """The Gaussian smoothing (scipy's, `sigma` px) of each of `maps` (h, w, k) with the `left_out` pixels (bool,
    (h, w); hairs) given no weight: each pixel is the weighted mean of the others near it (normalised
    convolution), a left-out pixel too, so that a hair neither darkens its neighbours nor keeps its own colour.
    Where nothing near a pixel is kept, its plain smoothing. With nothing left out (None, or no pixel), the plain
    smoothing of each map."""
    if left_out is None or not left_out.any():
        return np.stack([ndimage.gaussian_filter(maps[..., i], sigma) for i in range(maps.shape[-1])], -1)
    weight = (~left_out).astype(maps.dtype)
    spread = ndimage.gaussian_filter(weight, sigma)[..., None]
    smooth = ndimage.gaussian_filter(maps * weight[..., None], (sigma, sigma, 0)) / np.maximum(spread, 1e-3)
    unknown = spread[..., 0] <= 1e-3
    if unknown.any():
        smooth[unknown] = ndimage.gaussian_filter(maps, (sigma, sigma, 0))[unknown]
    return smooth
