"""Post-processing of a mask: the largest lesion, its holes filled (measured to help on ISIC 2018)."""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

EIGHT_CONNECTED = np.ones((3, 3), bool)
FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)


_LOADING = threading.Lock()


def compiled_label() -> Callable | None:
    """The compiled connected-component labelling that scipy.ndimage.label runs (its `_ni_label._label(input,
    structure, output)`, which returns the count), loaded from its file alone: importing scipy.ndimage takes
    0.3 s, most of what post-processing added to a cold one-image segment (issue #35). A later import of
    scipy.ndimage finds the same module object. None (label then calls scipy.ndimage.label) where scipy.ndimage
    is imported already, or being imported (the module may be set up only once, so the two must not overlap:
    call this before starting threads that may import scipy.ndimage), or where the file is not as expected."""
    with _LOADING:
        return _loaded_label()


@functools.cache
def _loaded_label() -> Callable | None:
    if "scipy.ndimage" in sys.modules:
        return None
    scipy_spec = importlib.util.find_spec("scipy")
    if scipy_spec is None or scipy_spec.origin is None:
        return None
    folder = Path(scipy_spec.origin).parent / "ndimage"
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"_ni_label{suffix}"
        spec = importlib.util.spec_from_file_location("_ni_label", path) if path.is_file() else None
        if spec is None or spec.loader is None:
            continue
        try:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module._label
        except Exception:  # any scipy whose module is not as this one's: its public label
            return None
    return None


def label(mask: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, int]:
    """scipy.ndimage.label(mask, structure) of a 2-D boolean mask: its connected parts numbered 1, 2, ... in the
    order of their first pixel, row by row, and their count."""
    compiled = compiled_label()
    if compiled is not None and mask.size:
        labels = np.empty(mask.shape, np.int32)
        try:
            return labels, int(compiled(np.ascontiguousarray(mask), structure, labels))
        except (TypeError, ValueError):  # another scipy's private function: its public label
            pass
    from scipy.ndimage import label as scipy_label

    labels, count = scipy_label(mask, structure=structure)
    return labels, int(count)


def needs_ndimage(postprocess: bool, offset: bool) -> bool:
    """Whether masks_from will import scipy.ndimage (0.3 s cold; import it in a thread while the model works):
    for a boundary `offset`'s distance transform, or to `postprocess` where the compiled labelling did not load.
    Loads that labelling now (0.5 ms), on the calling thread, before any such thread starts."""
    return offset or (postprocess and compiled_label() is None)


def import_ndimage() -> None:
    import scipy.ndimage  # noqa: F401


def postprocess_mask(mask: np.ndarray) -> np.ndarray:
    """Keep the largest connected lesion (8-connected; of equal ones, the first row by row) and fill its holes:
    the background regions that do not reach the image's edge (4-connected, as scipy's binary_fill_holes, which
    took three times as long). Both are labelled within the mask's bounding box, which holds every lesion pixel:
    what lies outside it is background joined to the image's edge, so a frame of background round the box stands
    for it (the same mask, 2 to 3 times as fast as over the whole image)."""
    rows, columns = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if len(rows) == 0:
        return mask
    box = (slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1))
    labels, count = label(np.asarray(mask[box], bool), EIGHT_CONNECTED)
    lesion = labels > 0 if count == 1 else labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    background, _ = label(np.pad(~lesion, 1, constant_values=True), FOUR_CONNECTED)  # 0: the lesion
    filled = np.zeros(mask.shape, bool)
    filled[box] = background[1:-1, 1:-1] != background[0, 0]  # the lesion, and the background off the frame
    return filled


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
