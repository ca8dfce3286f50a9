"""Post-processing of a mask: the largest lesion, its holes filled (measured to help on ISIC 2018)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

EIGHT_CONNECTED = np.ones((3, 3), bool)


def import_postprocessing() -> None:
    """Import what postprocess_mask uses (scipy.ndimage: 0.3 s cold), in a thread while the model works."""
    import scipy.ndimage  # noqa: F401


def postprocess_mask(mask: np.ndarray) -> np.ndarray:
    """Keep the largest connected lesion (8-connected) and fill its holes: the background regions that do not
    reach the image's edge (4-connected, as scipy's binary_fill_holes, which took three times as long)."""
    # scipy's label is what scikit-image's runs for a boolean mask; called directly, it spares a cold segment
    # the import of skimage.morphology and scipy.spatial (issue #35).
    from scipy.ndimage import label

    if not mask.any():
        return mask
    labels, _ = label(mask, structure=EIGHT_CONNECTED)
    lesion = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    background, _ = label(~lesion)  # 4-connected
    edge = np.unique(np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]]))
    return lesion | (~lesion & ~np.isin(background, edge[edge > 0]))


def equivalent_diameter(mask: np.ndarray) -> float:
    """The diameter of the disc with the mask's area, in pixels."""
    return float(2.0 * np.sqrt(mask.sum() / np.pi))


def offset_boundary(mask: np.ndarray, offset: float) -> np.ndarray:
    """The mask's outline moved out (offset > 0) or in (< 0) by `offset` times its equivalent diameter, by the
    Euclidean distance to the outline; a lesion moved in to nothing keeps its deepest pixels."""
    return next(offset_boundaries(mask, (offset,)))


def offset_boundaries(mask: np.ndarray, offsets: tuple[float, ...]) -> Iterator[np.ndarray]:
    """offset_boundary of one mask for each of `offsets`, its distances computed once."""
    from scipy.ndimage import distance_transform_edt

    diameter = equivalent_diameter(mask)
    outside = inside = None
    for offset in offsets:
        if not offset or not mask.any() or (offset > 0 and mask.all()):
            yield mask
        elif mask.all():  # no outline inside the image: distances are measured from the image's edge
            yield distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1] > -offset * diameter
        elif offset > 0:
            outside = distance_transform_edt(~mask) if outside is None else outside
            yield outside <= offset * diameter
        else:
            inside = distance_transform_edt(mask) if inside is None else inside
            kept = inside > -offset * diameter
            yield kept if kept.any() else inside >= inside.max()
