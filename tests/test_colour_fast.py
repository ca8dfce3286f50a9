"""Issue #34: the faster paths of the colour measurement give what the plain ones give: CIELAB by a cube-root
lookup, and the hair filter's closing, opening and widening as separable filters of numpy's minimum and maximum."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from skinseg.measurement.colour import LINEAR, SKIN_LINEAR, lab_of_pixels, normalised_lab
from skinseg.measurement.hair import CLOSING, DARKER, LONG, RELATIVE, THIN, hair_mask, window_extreme


def test_lab_by_lookup_is_within_a_tenth_of_the_exact_one():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20000, 3), dtype=np.uint8)
    for skin in (SKIN_LINEAR, SKIN_LINEAR * np.array([0.7, 1.0, 1.3])):
        exact = normalised_lab(LINEAR[pixels], skin)
        assert np.abs(lab_of_pixels(pixels, skin) - exact).max() < 0.1


def plain_hair_mask(value: np.ndarray) -> np.ndarray:
    """hair_mask with scipy's binary opening and dilation, as it was written first."""
    closed = ndimage.grey_closing(value, size=(CLOSING, CLOSING))
    depth = closed.astype(np.int16) - value
    dark = (depth > DARKER) & (depth > RELATIVE * closed)
    thin = dark & ~ndimage.binary_opening(dark, structure=np.ones((THIN, THIN)))
    labels, count = ndimage.label(thin, structure=np.ones((3, 3)))
    if count == 0:
        return thin
    sides = np.array([(b[0].stop - b[0].start, b[1].stop - b[1].start) for b in ndimage.find_objects(labels)])
    hairy = np.hypot(sides[:, 0], sides[:, 1]) >= LONG
    return ndimage.binary_dilation(np.concatenate([[False], hairy])[labels])


def test_the_hair_mask_is_the_one_of_binary_opening_and_dilation():
    rng = np.random.default_rng(1)
    ys, xs = np.mgrid[:150, :170]
    value = np.full((150, 170), 180.0) + rng.normal(0, 6, (150, 170))
    value[np.abs(ys - 0.6 * xs - 20) < 1.2] = 60  # hairs, a pixel or two wide
    value[np.abs(xs - 0.3 * ys - 90) < 0.8] = 70
    value[(ys - 100) ** 2 + (xs - 40) ** 2 < 36] = 50  # a globule
    value[rng.random((150, 170)) > 0.995] = 40  # dots
    value = np.clip(value, 0, 255).astype(np.uint8)
    found = hair_mask(value)
    assert found.sum() > 300 and not found[100, 40]
    assert np.array_equal(found, plain_hair_mask(value))


def test_window_extremes_are_scipys_one_dimensional_filters():
    rng = np.random.default_rng(2)
    scipy_filter = {np.minimum: ndimage.minimum_filter1d, np.maximum: ndimage.maximum_filter1d}
    for shape in ((37, 41), (2, 3), (1, 9), (5, 1)):  # the small ones: windows longer than the array
        values = rng.integers(0, 256, shape).astype(np.uint8)
        for size in (1, 2, 3, 4, 5, 8, 9, 13):
            for origin in {0, -(1 - size % 2)}:
                for pick, border in ((np.minimum, "reflect"), (np.maximum, "constant"), (np.maximum, "reflect")):
                    for axis in (0, 1):
                        expected = scipy_filter[pick](values, size, axis, mode=border, cval=0, origin=origin)
                        found = window_extreme(values, size, axis, pick, border, origin)
                        assert np.array_equal(found, expected), (shape, size, origin, border, axis)
