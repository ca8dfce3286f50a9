"""The boundary offset of a model file (ModelInfo.boundary_offset, as `adapt` calibrates it): the outline moved
by a fraction of the lesion's diameter, read and checked with the metadata, applied by every Segmenter."""

from __future__ import annotations

import numpy as np
import pytest

from skinseg.errors import SkinsegError
from skinseg.inference import Segmenter
from skinseg.inference.postprocess import equivalent_diameter, offset_boundaries, offset_boundary
from skinseg.models.weights import load_model, read_info, save_model


def disc(radius: float, size: int = 200) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= radius**2


def test_an_offset_moves_a_disc_outline_by_its_share_of_the_diameter():
    mask = disc(50)
    diameter = equivalent_diameter(mask)
    assert diameter == pytest.approx(100, rel=0.01)
    smaller, same, larger = offset_boundaries(mask, (-0.05, 0.0, 0.05))
    assert equivalent_diameter(smaller) == pytest.approx(90, abs=1.5)
    assert equivalent_diameter(larger) == pytest.approx(110, abs=1.5)
    assert same is mask and smaller.sum() < mask.sum() < larger.sum()
    assert np.array_equal(offset_boundary(mask, -0.05), smaller)


def test_a_lesion_moved_in_to_nothing_keeps_its_deepest_pixels_and_an_empty_mask_stays_empty():
    bar = np.zeros((20, 60), bool)
    bar[5:8, 10:50] = True  # 3 px thick, 14 px across its area: a quarter of that erodes it whole
    kept = offset_boundary(bar, -0.25)
    assert kept.any() and np.array_equal(np.flatnonzero(kept.any(axis=1)), [6]) and kept[6, 11:49].all()
    empty = np.zeros((10, 10), bool)
    assert not offset_boundary(empty, 0.1).any()
    full = np.ones((50, 60), bool)  # no outline inside the image: moved in from its edge, evenly
    inner = offset_boundary(full, -0.04)
    assert inner[3:-3, 3:-3].all() and not inner[:2].any() and not inner[:, -2:].any()
    assert offset_boundary(full, 0.04).all()


def test_the_offset_round_trips_and_every_segmenter_applies_it(tmp_path, tiny_model_path):
    model, info = load_model(tiny_model_path)
    moved = tmp_path / "moved.safetensors"
    save_model(model, moved, info.__class__(**{**info.__dict__, "boundary_offset": -0.04}))
    assert read_info(moved).boundary_offset == -0.04 and read_info(tiny_model_path).boundary_offset == 0.0
    image = np.zeros((64, 64, 3), np.uint8) + 200
    image[16:48, 16:48] = (90, 60, 40)
    plain = Segmenter(tiny_model_path, device="cpu")
    probability = plain.probabilities([image])
    plain_mask = plain.masks_from(probability)[0]
    expected = offset_boundary(plain_mask, -0.04)
    assert expected.any() and not np.array_equal(expected, plain_mask)
    assert np.array_equal(Segmenter(moved, device="cpu").masks_from(probability)[0], expected)
    assert ("boundary offset", "-0.04 of the diameter") in Segmenter(moved, device="cpu").facts(None)


@pytest.mark.parametrize("offset", [0.3, -0.26, float("nan"), "0.1"])
def test_an_offset_out_of_range_or_not_a_number_is_refused(tmp_path, tiny_model_path, offset):
    import json

    from safetensors.torch import load_file, save_file

    tensors = load_file(str(tiny_model_path))
    meta = json.loads(read_info(tiny_model_path).to_json())
    meta["boundary_offset"] = offset
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata={"skinseg": json.dumps(meta)})
    with pytest.raises(SkinsegError, match="boundary_offset"):
        read_info(bad)
