import numpy as np
import pytest

from skinseg.data.synthetic import synthetic_pair
from skinseg.reporting.figures import outline_band, overlay_image


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_outline_band_is_the_dilated_outline(seed):
    from skimage.morphology import dilation, disk  # imported here, not by every pytest-xdist worker (a second)
    from skimage.segmentation import find_boundaries

    _, mask = synthetic_pair(160, seed)
    for width in (1, 3, 6):
        expected = dilation(find_boundaries(mask, mode="thick"), disk(width))  # how overlays were drawn before
        band = outline_band(mask, width + 1)
        assert (band & expected).sum() / (band | expected).sum() > 0.97


def test_outlines_of_an_empty_a_full_and_an_edge_mask():
    assert not outline_band(np.zeros((20, 20), bool), 2).any()
    assert not outline_band(np.ones((20, 20), bool), 2).any()
    mask = np.zeros((30, 30), bool)
    mask[:, :10] = True  # a lesion cut by the image's edge has no outline along that edge
    band = outline_band(mask, 2)
    assert band[:, 8:12].all() and not band[:, :8].any() and not band[:, 12:].any()


def test_the_overlay_draws_truth_in_cyan_and_prediction_in_yellow():
    image = np.zeros((64, 64, 3), np.uint8)
    truth, prediction = np.zeros((64, 64), bool), np.zeros((64, 64), bool)
    truth[10:30, 10:30] = True
    prediction[34:54, 34:54] = True
    drawn = overlay_image(image, prediction, truth)
    assert tuple(drawn[10, 20]) == (0, 220, 255) and tuple(drawn[34, 44]) == (255, 230, 0)
    assert not drawn[20, 20].any() and not drawn[44, 44].any()  # the lesions' insides are left as they were
