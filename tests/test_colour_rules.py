"""Issue #34: the colour rules placed against dermatologists' labels on derm7pt's calibrate part (light red,
whitish white near the skin, grey as blue-grey, a minimum area per colour), on single CIELAB pixels and small
synthetic lesions."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import lab2rgb

from skinseg.measurement import measure_lesion
from skinseg.measurement.colour import COLOUR_NAMES, SKIN_LAB, SKIN_REFERENCE, nearest_colours, present_shares

PRESENT = present_shares()  # the share from which each colour counts

SIDE = 160


def named(lab: tuple[float, float, float]) -> str:
    index = int(nearest_colours(np.array([lab], float))[0])
    return COLOUR_NAMES[index] if index < len(COLOUR_NAMES) else "skin"


@pytest.mark.parametrize(
    "lab, expected",
    [
        ((65.0, 22.0, 10.0), "red"),  # erythema: light and redder than the skin
        ((60.0, 18.0, 8.0), "red"),  # a pink vessel on a pale lesion
        ((60.0, 15.0, 24.0), "light_brown"),  # a light, reddish brown (a* - 0.5 b* 3) is not red
        ((45.0, 20.0, 12.0), "dark_brown"),  # as red as erythema, but dark: a naevus's brown
        ((74.0, 5.0, 2.0), "white"),  # a little lighter and less yellow than the skin: white, not skin
        ((72.0, 14.0, 2.0), "white"),  # whitish pink (chroma 14): white, though light red too
        ((30.0, 12.0, 4.0), "blue_grey"),  # dark grey, a little red: nearer black and dark brown, but grey
        ((38.0, 16.0, 12.0), "dark_brown"),  # yellower: brown
        ((SKIN_LAB[0] + 1.0, SKIN_LAB[1] - 1.0, 7.5), "skin"),  # within ΔE 3 of the skin: skin
        ((70.0, 10.0, 9.0), "skin"),
    ],
)
def test_light_red_whitish_white_and_grey_are_named(lab, expected):
    assert named(lab) == expected


def srgb_of(lab: tuple[float, float, float]) -> np.ndarray:
    return lab2rgb(np.array([[lab]], float))[0, 0]


def lesion_with(spot_lab: tuple[float, float, float], share: float) -> dict:
    """A light brown disc on the reference skin, with a spot of `spot_lab` covering `share` of it."""
    ys, xs = np.mgrid[:SIDE, :SIDE]
    mask = (ys - 80) ** 2 + (xs - 80) ** 2 <= 50**2
    spot = (ys - 80) ** 2 + (xs - 80) ** 2 <= (50 * np.sqrt(share)) ** 2
    image = np.empty((SIDE, SIDE, 3))
    image[:] = SKIN_REFERENCE
    image[mask] = srgb_of((55.0, 18.0, 26.0))
    image[spot] = srgb_of(spot_lab)
    return measure_lesion(np.round(image * 255).astype(np.uint8), mask)


@pytest.mark.parametrize("name, lab", [("blue_grey", (50.0, 0.0, -2.0)), ("black", (12.0, 3.0, 3.0))])
def test_each_colour_counts_from_its_own_share(name, lab):
    above = lesion_with(lab, PRESENT[name] * 1.6)
    below = lesion_with(lab, PRESENT[name] * 0.6)
    assert above[f"colour_{name}"] >= PRESENT[name] > below[f"colour_{name}"] > 0
    assert above["colour_count"] > below["colour_count"]


def test_small_blue_grey_areas_count_and_as_much_black_does_not():
    grey, black = lesion_with((50.0, 0.0, -2.0), 0.02), lesion_with((12.0, 3.0, 3.0), 0.02)
    assert (
        grey["colour_blue_grey"] == pytest.approx(0.02, abs=0.005) and grey["colour_blue_grey"] >= PRESENT["blue_grey"]
    )
    assert black["colour_black"] == pytest.approx(0.02, abs=0.005) and black["colour_black"] < PRESENT["black"]


@pytest.mark.parametrize(
    "name, lab", [("red", (45.0, 40.0, 0.0)), ("red", (62.0, 30.0, 8.0)), ("white", (80.0, 0.0, 3.0))]
)
def test_a_red_or_white_area_raises_its_learned_share_until_it_counts(name, lab):
    plain = lesion_with((55.0, 18.0, 26.0), 0.0)
    with_area = lesion_with(lab, 0.15)
    assert plain[f"colour_{name}"] < PRESENT[name] <= with_area[f"colour_{name}"]
    assert with_area[f"colour_{name}"] > 2 * plain[f"colour_{name}"]
    assert with_area["colour_count"] > plain["colour_count"] == 1
