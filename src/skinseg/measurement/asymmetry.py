"""Asymmetry as the dermoscopic ABCD rule scores it (Stolz et al. 1994): the lesion is folded about two
perpendicular axes through its centre, placed where they give the least asymmetry, and about each axis its
outline, its colours and its structures are compared with their mirror image.

Per axis, three fractions of the lesion's area:
- shape: the part of the lesion whose mirror point lies outside it (0 for a shape symmetric about the axis);
- colour: the part, among the points whose mirror point is in the lesion too, whose colour (CIELAB, averaged
  over a few percent of the lesion's diameter) differs from its mirror point's by more than COLOUR_STEP;
- structure: the same for the local contrast of lightness (network, dots and globules against homogeneous
  areas), by more than STRUCTURE_STEP.
An axis's asymmetry is 1 - (1 - shape / SHAPE_FULL)(1 - colour)(1 - structure), the shape term capped at 1: the
lesion is asymmetric about it in shape, or in colour, or in structure; an axis above AXIS_ASYMMETRIC counts as
asymmetric. Of the pairs of axes tried, the one holding the most symmetric axis is kept (a lesion symmetric about
any axis is symmetric about one), and the lesion's asymmetry is the mean of its two axes'. (Keeping the pair with
the fewest asymmetric axes instead would let a diagonal pair share out one half's difference below the threshold.)
"""

from __future__ import annotations

import math

import numpy as np

from skinseg.measurement.hair import smoothed_without

COLOUR_STEP = 12.0  # CIE76 difference that counts as another colour
STRUCTURE_STEP = 4.0  # difference in the local standard deviation of L* that counts as another structure
SHAPE_FULL = 0.5  # a shape term this large (half the lesion outside its mirror image) is full asymmetry
AXIS_ASYMMETRIC = 0.35  # an axis with a larger asymmetry counts for asymmetry_axes
ANGLES = 4  # axis pairs tried, evenly over 90 degrees from the principal axes
SMOOTH = 0.03  # colours and structures are averaged over this fraction of the lesion's diameter


def principal_angle(mask: np.ndarray) -> float:
    """The angle (radians, from the x axis) of the mask's longest principal axis."""
    ys, xs = np.nonzero(mask)
    dx, dy = xs - xs.mean(), ys - ys.mean()
    return 0.5 * math.atan2(2 * (dx * dy).mean(), (dx * dx).mean() - (dy * dy).mean())


def folds(mask: np.ndarray, lab: np.ndarray, texture: np.ndarray, angles: np.ndarray) -> dict[str, np.ndarray]:
    """The shape, colour and structure asymmetry about the axes through the mask's centre at `angles` (radians,
    from the x axis): one value per angle each. Pixels are addressed by their flat index (one gather instead of
    two per map)."""
    ys, xs = np.nonzero(mask)
    dx, dy = xs - xs.mean(), ys - ys.mean()
    c, s = np.cos(2 * angles)[:, None], np.sin(2 * angles)[:, None]
    mx = np.rint(xs.mean() + c * dx + s * dy).astype(np.intp)  # (angles, pixels): each pixel's mirror point
    my = np.rint(ys.mean() + s * dx - c * dy).astype(np.intp)
    height, width = mask.shape
    inside = (mx >= 0) & (mx < width) & (my >= 0) & (my < height)
    mirror = my.clip(0, height - 1) * width + mx.clip(0, width - 1)
    here = ys * width + xs
    both = inside & mask.ravel()[mirror]
    squared = sum((channel[here][None] - channel[mirror]) ** 2 for channel in lab.reshape(-1, 3).T)
    colour_apart = squared > COLOUR_STEP**2
    flat_texture = texture.ravel()
    texture_apart = np.abs(flat_texture[here][None] - flat_texture[mirror]) > STRUCTURE_STEP
    pairs = np.maximum(1, both.sum(1))
    return {
        "shape": 1.0 - both.sum(1) / len(ys),
        "colour": (colour_apart & both).sum(1) / pairs,
        "structure": (texture_apart & both).sum(1) / pairs,
    }


def axis_asymmetry(terms: dict[str, np.ndarray]) -> np.ndarray:
    shape = np.minimum(1.0, terms["shape"] / SHAPE_FULL)
    return 1.0 - (1.0 - shape) * (1.0 - terms["colour"]) * (1.0 - terms["structure"])


def region_maps(lab: np.ndarray, diameter: float, hairs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The colours averaged over SMOOTH of the lesion's diameter, and the local contrast of lightness (standard
    deviation of L* over the same neighbourhood), with the `hairs` pixels given no weight (smoothed_without)."""
    sigma = max(1.0, SMOOTH * diameter)
    smooth = smoothed_without(np.concatenate([lab, lab[..., :1] ** 2], -1), sigma, hairs)
    texture = np.sqrt(np.maximum(smooth[..., 3] - smooth[..., 0] ** 2, 0.0))
    return smooth[..., :3], texture


def asymmetry_measures(
    mask: np.ndarray, lab: np.ndarray, diameter: float, hairs: np.ndarray | None = None
) -> dict[str, float | int]:
    """The asymmetry (0-1), the number of asymmetric axes (0, 1 or 2: the ABCD rule's A score), the angle of the
    first axis (degrees from the image's x axis, clockwise as y points down; the second is 90 degrees on) and the
    three terms averaged over the two axes, for the perpendicular pair of axes that is the most symmetric. The
    colours and structures are compared without the `hairs` pixels (bool, as `mask`; None: none)."""
    smooth, texture = region_maps(lab, diameter, hairs)
    first = principal_angle(mask) + np.arange(ANGLES) * (math.pi / 2) / ANGLES
    terms = folds(mask, smooth, texture, np.concatenate([first, first + math.pi / 2]))
    scores = axis_asymmetry(terms).reshape(2, ANGLES)
    best = int(np.lexsort((scores.sum(0), scores.min(0)))[0])  # the pair with the most symmetric axis
    pair = scores[:, best]
    return {
        "asymmetry": round(float(pair.mean()), 4),
        "asymmetry_axes": int((pair > AXIS_ASYMMETRIC).sum()),
        "asymmetry_angle": round(math.degrees(first[best]) % 180, 1),
        **{
            f"asymmetry_{name}": round(float(values.reshape(2, ANGLES)[:, best].mean()), 4)
            for name, values in terms.items()
        },
    }
