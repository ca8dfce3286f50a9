"""How sharply the pigment ends at the lesion's edge (the B of the dermoscopic ABCD rule judges an abrupt cut-off
of the pigment pattern at the periphery)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from skinseg.measurement.hair import smoothed_without


def border_abruptness(mask: np.ndarray, lab: np.ndarray, hairs: np.ndarray | None = None) -> float:
    """The mean colour gradient at the lesion's edge pixels: the CIELAB (CIE76) change per pixel of `lab`, with
    the `hairs` pixels given no weight (a hair across the edge is no edge). A lesion whose pigment stops abruptly
    scores high, one that fades into the skin low."""
    edge = mask & ~ndimage.binary_erosion(mask, border_value=1)  # where the image cuts the lesion: no edge
    if not edge.any():
        return 0.0
    smooth = smoothed_without(lab, 1.0, hairs)
    padded = np.pad(smooth, ((1, 1), (1, 1), (0, 0)), mode="edge")
    ys, xs = np.nonzero(edge)
    ys, xs = ys + 1, xs + 1
    across = (padded[ys, xs + 1] - padded[ys, xs - 1]) / 2  # central differences at the edge pixels only
    down = (padded[ys + 1, xs] - padded[ys - 1, xs]) / 2
    return float(np.sqrt((across**2).sum(-1) + (down**2).sum(-1)).mean())
