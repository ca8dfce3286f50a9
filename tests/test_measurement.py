"""skinseg.measurement on synthetic lesions whose size, symmetry and colours are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from lesions import SIZE, disc, ellipse, grid, l_shape, paint, palette_srgb
from skinseg.measurement import MEASURE_COLUMNS, measure_lesion
from skinseg.measurement.colour import COLOUR_NAMES, nearest_colours, present_shares
from skinseg.measurement.colour_model import LEARNED
from skinseg.measurement.shape import feret_diameter, perimeter_crofton, shape_measures

PRESENT = present_shares()  # the share from which each colour counts

BROWN = palette_srgb("light_brown")


def measured(mask: np.ndarray, regions=None, **options) -> dict:
    image = paint(regions if regions is not None else [(mask, BROWN)])
    return measure_lesion(image, mask, **options)


@pytest.mark.parametrize("radius", [10, 40, 90])
def test_a_disc_has_its_area_diameters_and_perimeter(radius):
    row = measured(disc(radius))
    assert row["area_px"] == disc(radius).sum()
    assert row["area_px"] == pytest.approx(math.pi * radius**2, rel=0.03)
    assert row["equivalent_diameter_px"] == pytest.approx(2 * radius, rel=0.02)
    assert row["diameter_px"] == pytest.approx(2 * radius + 1, rel=0.02)  # between the outer pixel corners
    assert row["perimeter_px"] == pytest.approx(2 * math.pi * (radius + 0.5), rel=0.02)
    assert row["border_irregularity"] == pytest.approx(1.0, abs=0.1 if radius < 20 else 0.03)  # pixel steps
    assert (row["centre_x"], row["centre_y"]) == (SIZE / 2, SIZE / 2)
    assert row["components"] == 1


def test_a_rectangles_box_and_feret_diameter_are_exact():
    mask = np.zeros((SIZE, SIZE), bool)
    mask[20:80, 50:90] = True
    row = measured(mask)
    assert (row["bbox_x"], row["bbox_y"], row["bbox_width"], row["bbox_height"]) == (50, 20, 40, 60)
    assert row["diameter_px"] == pytest.approx(math.hypot(40, 60), abs=0.01)
    assert (row["centre_x"], row["centre_y"]) == (69.5, 49.5)
    assert row["border_irregularity"] > 1.15  # 200^2 / (4 pi 2400) = 1.33; Crofton's estimate of edges is lower


def test_the_crofton_perimeter_is_skimages():
    from skimage.measure import perimeter_crofton as skimage_perimeter

    rng = np.random.default_rng(0)
    for _ in range(100):
        mask = rng.random((rng.integers(1, 40), rng.integers(1, 40))) > rng.random()
        assert perimeter_crofton(mask) == pytest.approx(skimage_perimeter(mask, directions=4), abs=1e-9)


def test_a_single_pixel_and_a_line_have_feret_diameters():
    pixel = np.zeros((5, 5), bool)
    pixel[2, 2] = True
    line = np.zeros((5, 20), bool)
    line[2, 3:13] = True
    assert feret_diameter(pixel) == pytest.approx(math.sqrt(2))
    assert feret_diameter(line) == pytest.approx(math.hypot(10, 1))


def test_a_rough_border_is_irregular():
    ys, xs = np.mgrid[:SIZE, :SIZE] - SIZE / 2
    wavy = np.hypot(ys, xs) <= 70 + 12 * np.sin(12 * np.arctan2(ys, xs))
    assert measured(wavy)["border_irregularity"] > 1.4


def test_pixel_size_gives_millimetres():
    row = measured(disc(40), pixel_size=0.05)
    assert row["area_mm2"] == pytest.approx(row["area_px"] * 0.0025)
    for name in ("perimeter", "diameter", "equivalent_diameter"):
        assert row[f"{name}_mm"] == pytest.approx(row[f"{name}_px"] * 0.05, abs=1e-3)
    assert measured(disc(40))["area_mm2"] is None


def test_connected_parts_are_counted_unless_the_mask_is_one_lesion():
    two = disc(20, (60, 60)) | disc(20, (170, 170))
    assert measured(two)["components"] == 2
    assert measured(two, one_lesion=True)["components"] == 1
    assert shape_measures(two)["area_px"] == two.sum()


def test_an_empty_mask_has_area_zero_and_nothing_else():
    row = measure_lesion(paint([]), np.zeros((SIZE, SIZE), bool))
    assert row["area_px"] == 0
    assert all(row[c] is None for c in MEASURE_COLUMNS[2:])
    assert list(row) == list(MEASURE_COLUMNS[1:])


@pytest.mark.parametrize(
    "mask", [disc(70), ellipse(90, 45, 30), ellipse(60, 35, -75)], ids=["disc", "ellipse", "tilted ellipse"]
)
def test_a_uniform_disc_or_ellipse_is_symmetric_about_both_axes(mask):
    row = measured(mask)
    assert row["asymmetry_axes"] == 0
    assert row["asymmetry"] < 0.1
    assert row["asymmetry_shape"] < 0.03


def test_a_disc_half_dark_half_light_brown_is_asymmetric_by_colour_about_one_axis():
    mask = disc(70)
    left = mask & (np.mgrid[:SIZE, :SIZE][1] < SIZE / 2)
    row = measured(mask, [(mask, BROWN), (left, palette_srgb("dark_brown"))])
    assert row["asymmetry_axes"] == 1
    assert row["asymmetry_shape"] < 0.03
    assert row["asymmetry_colour"] > 0.3  # about one axis every pixel meets the other brown: 1; about the other 0


def test_a_disc_with_dots_on_one_half_is_asymmetric_by_structure():
    mask = disc(70)
    ys, xs = np.mgrid[:SIZE, :SIZE]
    dots = mask & (xs < SIZE / 2) & ((ys // 8 + xs // 8) % 2 == 0)  # a checked pattern: the colour averages alike
    row = measured(mask, [(mask, BROWN), (dots, palette_srgb("light_brown", (-12, 0, 0)))])
    assert row["asymmetry_structure"] > 0.15  # the mean of the two axes': one near 0
    assert row["asymmetry_axes"] == 1


def test_an_l_shape_is_asymmetric_by_shape():
    equal_arms = measured(l_shape(110, 110))  # symmetric about its diagonal only
    assert equal_arms["asymmetry_axes"] == 1
    assert equal_arms["asymmetry_shape"] > 0.15
    unequal = measured(l_shape(130, 70))
    assert unequal["asymmetry_axes"] == 2
    assert unequal["asymmetry"] > equal_arms["asymmetry"] > measured(disc(60))["asymmetry"]


def sectors(mask: np.ndarray, count: int) -> list[np.ndarray]:
    ys, xs = np.mgrid[:SIZE, :SIZE] - SIZE / 2
    angle = (np.arctan2(ys, xs) + np.pi) / (2 * np.pi)  # 0-1 around the centre
    return [mask & (angle >= i / count) & (angle < (i + 1) / count) for i in range(count)]


CASTS = {
    "none": (1.0, 1.0, 1.0),
    "warm light": (1.25, 0.95, 0.7),
    "cold light": (0.8, 0.95, 1.2),
    "dim": (0.55, 0.55, 0.55),
    "darker skin": (0.55, 0.42, 0.33),
    "fair skin": (1.15, 1.12, 1.08),
}


@pytest.mark.parametrize("cast", CASTS.values(), ids=CASTS.keys())
@pytest.mark.parametrize("names", [COLOUR_NAMES, ("light_brown", "dark_brown"), ("red", "white", "blue_grey")])
def test_painted_colours_are_found_whatever_the_light_and_the_skin(names, cast):
    mask = disc(80)
    parts = sectors(mask, len(names))
    rng = np.random.default_rng(len(names))
    shades = [palette_srgb(name, tuple(rng.uniform(-4, 4, 3))) for name in names]  # near, not equal
    row = measure_lesion(paint(list(zip(parts, shades, strict=True)), cast=cast, seed=3), mask)
    in_white_light = measure_lesion(paint(list(zip(parts, shades, strict=True)), seed=3), mask)
    for name in COLOUR_NAMES:
        if name in LEARNED:  # the learned model's share: the same as in white light on the reference skin
            assert row[f"colour_{name}"] == pytest.approx(in_white_light[f"colour_{name}"], abs=0.02), name
        else:
            expected = 1 / len(names) if name in names else 0.0
            assert row[f"colour_{name}"] == pytest.approx(expected, abs=0.08), name
    assert row["colour_count"] == in_white_light["colour_count"]


def test_a_colour_below_the_threshold_is_not_counted():
    mask = disc(80)
    speck = disc(80 * math.sqrt(PRESENT["black"] / 2))  # half the area that counts
    row = measured(mask, [(mask, BROWN), (speck, palette_srgb("black"))])
    assert 0 < row["colour_black"] < PRESENT["black"]
    assert row["colour_count"] == 1


def test_skin_inside_the_mask_is_no_colour():
    mask = disc(80)
    row = measure_lesion(paint([(disc(40), BROWN)]), mask)
    assert row["colour_light_brown"] == pytest.approx(0.25, abs=0.05)
    assert sum(row[f"colour_{n}"] for n in COLOUR_NAMES if n not in LEARNED) == pytest.approx(0.25, abs=0.05)


def test_a_sharp_edge_is_more_abrupt_than_a_faded_one():
    from scipy import ndimage

    mask = disc(70)
    sharp = paint([(mask, palette_srgb("dark_brown"))], noise=0)
    faded = np.stack([ndimage.gaussian_filter(sharp[..., i].astype(float), 8) for i in range(3)], -1)
    abrupt = measure_lesion(sharp, mask)["border_abruptness"]
    assert abrupt > 2 * measure_lesion(faded.astype(np.uint8), mask)["border_abruptness"]


def test_confidence_is_the_mean_margin_above_the_threshold():
    mask = disc(50)
    image = paint([(mask, BROWN)])
    assert measure_lesion(image, mask)["confidence"] is None
    certain = np.where(mask, 1.0, 0.0)
    assert measure_lesion(image, mask, probability=certain, threshold=0.4)["confidence"] == 1.0
    halfway = np.where(mask, 0.7, 0.0)
    assert measure_lesion(image, mask, probability=halfway, threshold=0.4)["confidence"] == pytest.approx(0.5)


@pytest.mark.parametrize(("angle", "expected"), [(30, 30), (-30, 150), (90, 90)])
def test_the_first_axis_lies_along_an_ellipses_long_axis_clockwise_from_x(angle, expected):
    row = measured(ellipse(90, 40, angle))
    assert min(abs(row["asymmetry_angle"] - expected), 180 - abs(row["asymmetry_angle"] - expected)) < 2


def test_where_the_image_cuts_the_lesion_is_no_border():
    mask = disc(70)
    inside = measure_lesion(paint([(mask, palette_srgb("dark_brown"))], noise=0), mask)
    cut = np.zeros_like(mask)
    cut[:, :120] = disc(70, (120, 120))[:, 120:]  # the right half of the disc, at the image's left edge
    at_edge = measure_lesion(paint([(cut, palette_srgb("dark_brown"))], noise=0), cut)
    assert at_edge["border_abruptness"] == pytest.approx(inside["border_abruptness"], rel=0.15)


def test_a_lesion_that_fills_the_image_keeps_its_colour():
    """No skin to normalise against: the image is taken as it is, not normalised against the lesion itself."""
    mask = np.ones((SIZE, SIZE), bool)
    row = measure_lesion(paint([(mask, palette_srgb("dark_brown"))]), mask)
    assert row["colour_dark_brown"] > 0.95 and row["colour_count"] == 1


@pytest.mark.parametrize("radius", [1, 3, 5])
def test_a_small_uniform_lesion_has_one_colour(radius):
    mask = disc(radius)
    row = measure_lesion(paint([(mask, palette_srgb("dark_brown"))], noise=0), mask)
    assert row["colour_count"] == 1 and row["colour_dark_brown"] > 0.9
    assert row["border_irregularity"] >= 1.0


def test_a_single_pixel_is_measured():
    mask = np.zeros((SIZE, SIZE), bool)
    mask[10, 20] = True
    row = measured(mask)
    assert (row["area_px"], row["bbox_x"], row["bbox_y"], row["bbox_width"]) == (1, 20, 10, 1)
    assert row["diameter_px"] == pytest.approx(math.sqrt(2), abs=0.01) and row["border_irregularity"] == 1.0


def test_scattered_specks_are_measured_on_a_bounded_cut():
    """Two pixels far apart: a small area in a large box (a 6.5 GB cut before the bound)."""
    from skinseg.measurement.lesion import WORK_SIDE, _work_area

    mask = np.zeros((SIZE, SIZE), bool)
    mask[5, 5] = mask[230, 230] = True
    image = paint([(mask, BROWN)])
    _, small, _ = _work_area(image, mask, shape_measures(mask))
    assert max(small.shape) <= WORK_SIDE
    assert measure_lesion(image, mask)["components"] == 2


def test_a_0_255_mask_is_a_mask_and_other_values_are_refused():
    mask = disc(40)
    image = paint([(mask, BROWN)])
    assert measure_lesion(image, mask.astype(np.uint8) * 255) == measure_lesion(image, mask)
    with pytest.raises(ValueError, match="bool, 0/1 or 0/255"):
        measure_lesion(image, mask.astype(np.uint8) * 100)
    with pytest.raises(ValueError, match="must agree"):
        measure_lesion(image, mask[:10])
    with pytest.raises(ValueError, match="uint8 RGB"):
        measure_lesion(image[..., 0], mask)


def hairs(count: int = 6, width: float = 1.5) -> np.ndarray:
    """Straight hairs `width` px thick across the whole image, at several angles."""
    ys, xs = grid()
    lines = np.zeros((SIZE, SIZE), bool)
    for i in range(count):
        angle = math.pi * (0.1 + 0.8 * i / count)
        offset = (i - count / 2) * 25
        distance = (xs - SIZE / 2) * math.sin(angle) - (ys - SIZE / 2) * math.cos(angle) - offset
        lines |= np.abs(distance) <= width / 2
    return lines


HAIR = np.array([0.16, 0.12, 0.10])  # a dark hair, sRGB


def test_hairs_across_a_lesion_add_no_dark_brown_or_black(monkeypatch):
    import skinseg.measurement.lesion as lesion

    mask = disc(80)
    image = paint([(mask, BROWN), (hairs(), HAIR)])
    row = measure_lesion(image, mask)
    assert row["colour_light_brown"] > 0.95
    assert row["colour_dark_brown"] + row["colour_black"] < 0.02
    assert row["colour_count"] == 1
    monkeypatch.setattr(lesion, "hair_mask", lambda value: np.zeros(value.shape, bool))  # the hairs kept
    kept = measure_lesion(image, mask)
    assert kept["colour_dark_brown"] + kept["colour_black"] > 0.05  # (under black's PRESENT share: not counted)


def test_dark_globules_are_not_taken_for_hairs():
    mask = disc(80)
    ys, xs = grid()
    globules = np.zeros((SIZE, SIZE), bool)
    for y, x in [(90, 90), (90, 150), (150, 90), (150, 150), (120, 120)]:
        globules |= (ys - y) ** 2 + (xs - x) ** 2 <= 8**2
    row = measure_lesion(paint([(mask, BROWN), (globules, palette_srgb("black"))]), mask)
    assert row["colour_black"] == pytest.approx(globules.sum() / mask.sum(), abs=0.02)


def test_a_pale_scar_is_white_and_a_glare_spot_is_not():
    mask = disc(80)
    scar = disc(35, (120, 140))
    glare = disc(20, (100, 90))
    scar_white = palette_srgb("white", (2.0, 2.0, 3.0))  # lighter than the skin, a little pink and yellow
    row = measure_lesion(paint([(mask, BROWN), (scar, scar_white), (glare, np.ones(3))]), mask)
    plain = measure_lesion(paint([(mask, BROWN)]), mask)
    assert row["colour_white"] >= PRESENT["white"] > plain["colour_white"]
    only_glare = measure_lesion(paint([(mask, BROWN), (glare, np.ones(3))]), mask)
    assert only_glare["colour_white"] == pytest.approx(plain["colour_white"], abs=0.005)
    assert only_glare["colour_light_brown"] > 0.97


@pytest.mark.parametrize(
    "lab, expected",
    [
        ((45.0, 35.0, 12.0), "red"),  # a vessel: red outweighs yellow
        ((60.0, 34.0, 6.0), "red"),  # erythema, pink
        ((40.0, 22.0, 22.0), "dark_brown"),  # the reddish brown of a naevus is not red
        ((55.0, 18.0, 26.0), "light_brown"),
        ((48.0, 1.0, -4.0), "blue_grey"),  # bluish grey is not white
        ((82.0, 3.0, 4.0), "white"),
    ],
)
def test_each_colour_is_named_where_it_lies(lab, expected):
    assert COLOUR_NAMES[nearest_colours(np.array([lab]))[0]] == expected


def test_the_folds_by_flat_index_are_those_by_row_and_column():
    from skinseg.measurement.asymmetry import COLOUR_STEP, STRUCTURE_STEP, folds

    rng = np.random.default_rng(3)
    mask = ndimage.binary_opening(rng.random((50, 60)) > 0.3)
    lab = rng.normal(50, 15, (50, 60, 3)).astype(np.float32)
    texture = rng.normal(5, 3, (50, 60)).astype(np.float32)
    angles = np.linspace(0, np.pi, 8, endpoint=False)
    ys, xs = np.nonzero(mask)
    c, s = np.cos(2 * angles)[:, None], np.sin(2 * angles)[:, None]
    mx = np.rint(xs.mean() + c * (xs - xs.mean()) + s * (ys - ys.mean())).astype(np.intp)
    my = np.rint(ys.mean() + s * (xs - xs.mean()) - c * (ys - ys.mean())).astype(np.intp)
    inside = (mx >= 0) & (mx < 60) & (my >= 0) & (my < 50)
    my, mx = my.clip(0, 49), mx.clip(0, 59)
    both = inside & mask[my, mx]
    colour = (((lab[ys, xs][None] - lab[my, mx]) ** 2).sum(-1) > COLOUR_STEP**2) & both
    structure = (np.abs(texture[ys, xs][None] - texture[my, mx]) > STRUCTURE_STEP) & both
    found = folds(mask, lab, texture, angles)
    assert np.array_equal(found["shape"], 1.0 - both.sum(1) / len(ys))
    assert np.array_equal(found["colour"], colour.sum(1) / np.maximum(1, both.sum(1)))
    assert np.array_equal(found["structure"], structure.sum(1) / np.maximum(1, both.sum(1)))


def test_hairs_on_one_half_do_not_make_a_symmetric_lesion_asymmetric(monkeypatch):
    """Issue #34: hairs out of the structure measurements too. Three hairs across one half of a plain disc made
    its structure asymmetric (0.25) before; the hair mask now gives them no weight in the folds' maps."""
    import skinseg.measurement.lesion as lesion_module

    mask = disc(60)
    clean = paint([(mask, palette_srgb("light_brown"))], seed=0)
    ys, xs = grid()
    hairy = clean.copy()
    for offset in (-30, 0, 30):
        hairy[(np.abs(ys - 0.4 * xs - 40 - offset) < 1.0) & (xs > 120)] = (45, 35, 30)
    plain, with_hairs = measure_lesion(clean, mask), measure_lesion(hairy, mask)
    assert with_hairs["asymmetry"] == plain["asymmetry"] < 0.05
    assert abs(with_hairs["border_abruptness"] - plain["border_abruptness"]) < 0.2
    monkeypatch.setattr(lesion_module, "hair_mask", lambda value: np.zeros(value.shape, bool))
    assert measure_lesion(hairy, mask)["asymmetry_structure"] > 0.15  # the hairs, counted, would matter


def test_smoothing_without_hairs_sees_through_them():
    from skinseg.measurement.hair import smoothed_without

    field = np.full((40, 50, 2), 30.0, np.float32)
    field[..., 1] = 70.0
    hairs = np.zeros((40, 50), bool)
    hairs[:, 20:22] = True
    field[hairs] = 0.0  # dark
    smooth = smoothed_without(field, 2.0, hairs)
    assert np.allclose(smooth[..., 0], 30.0, atol=1e-3) and np.allclose(smooth[..., 1], 70.0, atol=1e-3)
    plain = smoothed_without(field, 2.0, None)
    assert plain[20, 21, 0] < 20.0 and np.array_equal(plain, smoothed_without(field, 2.0, np.zeros_like(hairs)))
    everywhere = smoothed_without(field, 2.0, np.ones_like(hairs))  # nothing kept: the plain smoothing
    assert np.allclose(everywhere, plain)


def test_a_cuts_pixels_carried_onto_another_cut_of_the_same_image():
    from skinseg.measurement.lesion import CutBox

    fine = CutBox(y0=10, y1=50, x0=20, x1=100, size=(80, 40))  # one cut pixel per image pixel
    coarse = CutBox(y0=0, y1=60, x0=0, x1=120, size=(60, 30))  # two image pixels per cut pixel, wider
    marked = np.zeros((40, 80), bool)
    marked[10:14, 30:34] = True  # image rows 20-23, columns 50-53
    carried = fine.onto(marked, coarse)
    assert carried.shape == (30, 60) and np.argwhere(carried).tolist() == [[10, 25], [10, 26], [11, 25], [11, 26]]
    assert np.array_equal(fine.onto(marked, fine), marked)
    assert not fine.onto(np.ones((40, 80), bool), coarse)[:4].any()  # rows the fine cut does not reach


def test_measure_lesion_checks_its_options():
    """A Python trial: pixel_size -0.02 gave negative sizes in mm, a probability map of another shape an
    IndexError, threshold 1 a NaN confidence."""
    from skinseg.errors import ConfigError

    mask = disc(30)
    image = paint([(mask, palette_srgb("dark_brown"))])
    for pixel_size in (-0.02, float("nan"), 0.0, 100.0):
        with pytest.raises(ConfigError, match=r"`pixel_size` must be a number of mm from 0\.0001 to 10"):
            measure_lesion(image, mask, pixel_size=pixel_size)
    with pytest.raises(ConfigError, match=r"`probability` is \(10, 10\), the mask \(\d+, \d+\): they must agree"):
        measure_lesion(image, mask, probability=np.zeros((10, 10)))
    with pytest.raises(ConfigError, match=r"`threshold` must be between 0 and 1, got 1\.0"):
        measure_lesion(image, mask, probability=mask.astype(float), threshold=1.0)
    with pytest.raises(ValueError, match="must be a uint8 RGB array"):
        measure_lesion(image.astype(np.float32), mask)
    assert measure_lesion(image, mask, pixel_size=0.01)["diameter_mm"] > 0
