"""Property tests: the metrics and image loading hold for any input hypothesis can find."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from skinseg.data.images import load_mask, load_rgb
from skinseg.evaluation.metrics import METRIC_NAMES, image_metrics

shapes = st.tuples(st.integers(1, 24), st.integers(1, 24))


@st.composite
def mask_pairs(draw):
    shape = draw(shapes)
    return draw(arrays(bool, shape)), draw(arrays(bool, shape))


@given(mask_pairs())
def test_metrics_are_bounded(pair):
    values = image_metrics(*pair)
    assert all(0.0 <= values[name] <= 1.0 for name in METRIC_NAMES)


@given(mask_pairs())
def test_overlap_metrics_are_symmetric(pair):
    truth, pred = pair
    a, b = image_metrics(truth, pred), image_metrics(pred, truth)
    for name in ("accuracy", "jaccard", "threshold_jaccard", "dice"):
        assert a[name] == b[name]


@given(mask_pairs())
def test_metrics_agree_with_a_float64_reference(pair):
    truth, pred = (p.astype(np.float64) for p in pair)
    tp, fp = (truth * pred).sum(), ((1 - truth) * pred).sum()
    fn, tn = (truth * (1 - pred)).sum(), ((1 - truth) * (1 - pred)).sum()
    values = image_metrics(*pair)
    union = tp + fp + fn
    assert abs(values["dice"] - (2 * tp / (2 * tp + fp + fn) if union else 1.0)) < 1e-12
    assert abs(values["jaccard"] - (tp / union if union else 1.0)) < 1e-12
    assert abs(values["accuracy"] - (tp + tn) / truth.size) < 1e-12


@given(mask_pairs())
def test_dice_and_jaccard_are_linked(pair):
    values = image_metrics(*pair)
    jaccard = values["jaccard"]
    assert abs(values["dice"] - 2 * jaccard / (1 + jaccard)) < 1e-12


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.uint8, st.tuples(st.integers(1, 20), st.integers(1, 20), st.just(3))),
    st.sampled_from(["PNG", "BMP", "TIFF"]),
)
def test_rgb_images_load_back_to_the_same_pixels(tmp_path_factory, image, fmt):
    path = tmp_path_factory.mktemp("img") / f"x.{fmt.lower()}"
    Image.fromarray(image).save(path, format=fmt)
    assert np.array_equal(load_rgb(path), image)


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 20), st.integers(1, 20))), st.sampled_from(["PNG", "BMP", "TIFF"]))
def test_grey_images_load_as_equal_rgb_channels(tmp_path_factory, image, fmt):
    path = tmp_path_factory.mktemp("img") / f"x.{fmt.lower()}"
    Image.fromarray(image).save(path, format=fmt)
    assert np.array_equal(load_rgb(path), np.repeat(image[..., None], 3, axis=2))


@settings(max_examples=60, deadline=None)
@given(arrays(bool, shapes), st.sampled_from([(0, 255), (0, 1)]))
def test_masks_load_back_by_the_isic_rule(tmp_path_factory, mask, levels):
    path = tmp_path_factory.mktemp("mask") / "m.png"
    Image.fromarray(np.where(mask, levels[1], levels[0]).astype(np.uint8)).save(path)
    assert np.array_equal(load_mask(path), mask)


@given(arrays(bool, st.tuples(st.integers(1, 20), st.integers(1, 20))))
@settings(max_examples=200, deadline=None)  # the first example imports scipy and scikit-image
def test_postprocessing_keeps_the_largest_lesion_and_fills_holes_as_scipy_does(mask):
    from scipy.ndimage import binary_fill_holes
    from skimage.measure import label

    from skinseg.inference.postprocess import postprocess_mask

    expected = mask
    if mask.any():
        labels = label(mask, connectivity=2)
        counts = np.bincount(labels.ravel())[1:]
        expected = binary_fill_holes(labels == np.argmax(counts) + 1)
    assert (postprocess_mask(mask) == expected).all()
