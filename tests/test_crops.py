"""skinseg.inference.crops: the lesion's box plus a margin, always inside the image and around the lesion."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO
from skinseg.data.images import load_mask, load_rgb
from skinseg.inference.crops import crop_box, lesion_crop


def box_mask(shape, x0, y0, x1, y1) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_the_margin_is_a_fraction_of_the_box_on_each_side():
    assert crop_box(box_mask((200, 300), 100, 50, 200, 100), margin=0.1) == (90, 45, 210, 105)
    assert crop_box(box_mask((200, 300), 100, 50, 200, 100), margin=0.0) == (100, 50, 200, 100)


def test_a_square_crop_is_centred_on_the_lesion():
    assert crop_box(box_mask((200, 300), 100, 50, 200, 100), margin=0.0, square=True) == (100, 25, 200, 125)


def test_a_crop_crossing_an_edge_is_moved_back_inside_and_cut_only_where_the_image_is_smaller():
    assert crop_box(box_mask((200, 300), 0, 0, 40, 40), margin=0.25) == (0, 0, 60, 60)
    assert crop_box(box_mask((100, 300), 100, 0, 200, 100), margin=0.0, square=True) == (100, 0, 200, 100)
    assert crop_box(box_mask((50, 300), 100, 0, 200, 50), margin=0.0, square=True) == (100, 0, 200, 50)  # cut


def test_no_lesion_no_crop():
    image = np.zeros((20, 20, 3), np.uint8)
    assert crop_box(np.zeros((20, 20), bool)) is None
    assert lesion_crop(image, np.zeros((20, 20), bool)) is None


def test_crop_size_sets_the_longer_side_and_keeps_the_shape():
    image = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    mask = box_mask((200, 300), 100, 50, 200, 100)
    assert lesion_crop(image, mask, margin=0.0).shape == (50, 100, 3)
    assert lesion_crop(image, mask, margin=0.0, size=64).shape == (32, 64, 3)
    assert lesion_crop(image, mask, margin=0.0, size=64, square=True).shape == (64, 64, 3)
    np.testing.assert_array_equal(lesion_crop(image, mask, margin=0.0), image[50:100, 100:200])


@settings(max_examples=200, deadline=None)
@given(
    height=st.integers(1, 60),
    width=st.integers(1, 60),
    corners=st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
    margin=st.floats(0, 2),
    square=st.booleans(),
)
def test_every_crop_lies_inside_the_image_and_holds_the_whole_lesion(height, width, corners, margin, square):
    a, b, c, d = corners
    x0, x1 = sorted((min(width - 1, int(a * width)), min(width - 1, int(b * width))))
    y0, y1 = sorted((min(height - 1, int(c * height)), min(height - 1, int(d * height))))
    mask = box_mask((height, width), x0, y0, x1 + 1, y1 + 1)
    cx0, cy0, cx1, cy1 = crop_box(mask, margin, square)
    assert 0 <= cx0 <= x0 and x1 < cx1 <= width
    assert 0 <= cy0 <= y0 and y1 < cy1 <= height
    if square:
        assert cx1 - cx0 == cy1 - cy0 or width == cx1 - cx0 or height == cy1 - cy0


@pytest.mark.parametrize("square", [False, True])
def test_crops_of_the_real_samples_hold_their_lesions(square):
    for image_path in sorted((REPO / "samples" / "images").glob("*.jpg")):
        image = load_rgb(image_path)
        mask = load_mask(REPO / "samples" / "masks" / f"{image_path.stem}_segmentation.png")
        x0, y0, x1, y1 = crop_box(mask, 0.1, square)
        assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]
        assert mask[y0:y1, x0:x1].sum() == mask.sum()  # every lesion pixel is in the crop
        assert lesion_crop(image, mask, 0.1, square=square).shape == (y1 - y0, x1 - x0, 3)
