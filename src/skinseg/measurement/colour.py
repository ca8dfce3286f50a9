"""The colours of a lesion: the image is first normalised against the skin around the lesion, then each lesion
pixel is named in CIELAB: red where its red outweighs its yellow (vessels), or where it is light and redder
than the skin (erythema, pink; not the reddish brown of naevi); white where it is light, whitish and not
yellowish (fibrosis, regression, the veil's haze); skin where it is close to the normalised skin (but white a
little lighter or less yellow than it); blue-grey where it is grey or bluish at mid lightness; else the
nearest of light brown, dark brown, blue-grey and black.
Hairs and glare (specular highlights) are left out before the fractions are taken.

The columns of white and red are not these rules' fractions: those two are found by a small per-pixel model
learned from dermatologists' labels (colour_model.py), and their columns are the mean of its probabilities over
the lesion. The rules still name white and red pixels, so that they are not counted as another colour.

Normalisation: dermoscopes differ in their light and cameras in their white balance, and the same brown looks
different on fair and on dark skin. Each image is scaled, channel by channel in linear RGB (a von Kries
transform), so that the median colour of a ring of skin around the lesion becomes SKIN_REFERENCE, the median
skin colour of the ISIC 2018 training images. A colour cast that multiplies the channels is undone exactly.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.color import rgb2lab, xyz2lab

from skinseg.measurement.colour_model import LEARNED, bundled_pixel_model

# The six colours of the dermoscopic ABCD rule (Stolz et al. 1994; Argenziano et al. 2003) as pure colours, sRGB
# 0-1, in the table of Kasmi and Mokrani (2016), "Classification of malignant melanoma and benign skin lesions:
# implementation of automatic ABCD rule", IET Image Processing 10(6). Used as they are (benchmarks), they name
# 60% of naevi red: the table's red (hue 32 degrees in CIELAB) lies among the browns of real lesions.
TABLE_COLOURS: dict[str, tuple[float, float, float]] = {
    "white": (1.0, 1.0, 1.0),
    "red": (0.8, 0.2, 0.2),
    "light_brown": (0.6, 0.4, 0.0),
    "dark_brown": (0.2, 0.0, 0.0),
    "blue_grey": (0.2, 0.6, 0.6),
    "black": (0.0, 0.0, 0.0),
}
COLOUR_NAMES = tuple(TABLE_COLOURS)
# The same six colours where they lie in images normalised against the skin (CIELAB, D65; the skin is at
# L* 70, a* 9, b* 9): white lighter and less chromatic than the skin; red at hue 0 (the median hue of vascular
# lesions' pixels in HAM10000 is 3 degrees, of naevi's 40); light and dark brown at the hue of naevi, at two
# lightnesses; blue-grey achromatic at mid lightness; black near L* 0. Placed on the HAM10000 validation split
# by how often each colour is found per diagnosis (docs/measure.md), never on test images. Pixels are named by
# the nearest of the four browns, blue-grey and black only; white and red by their rules (below), which these
# two positions satisfy: they are examples of each colour.
PALETTE: dict[str, tuple[float, float, float]] = {
    "white": (80.0, 0.0, 3.0),
    "red": (45.0, 40.0, 0.0),
    "light_brown": (55.0, 18.0, 26.0),
    "dark_brown": (35.0, 24.0, 20.0),
    "blue_grey": (50.0, 0.0, -2.0),
    "black": (12.0, 3.0, 3.0),
}
# The median colour of the skin ring (sRGB, 0-1) over the ISIC 2018 training images, with their expert masks:
# benchmarks/skin_reference.py.
SKIN_REFERENCE = (0.765, 0.643, 0.608)
SKIN_DIFFERENCE = 10.0  # CIE76: a pixel this close to the normalised skin's colour is skin, not one of the six
# A colour counts as present (colour_count) when it covers at least this fraction of the lesion: blue-grey at 1%
# (regression's blue areas are small), light brown at 3%, dark brown and black at 10% (a faint hair or the shadow
# at a mask's edge is a few percent of dark). Chosen by the count's Spearman correlation with the labels' count on
# derm7pt's calibrate part (that count has no dark brown or black of its own, so their shares rest on no label:
# docs/measure.md). White and red count from the share of the learned model's own fit (present_shares).
PRESENT_BY_RULE: dict[str, float] = {"light_brown": 0.03, "dark_brown": 0.10, "blue_grey": 0.01, "black": 0.10}
# White, red and blue-grey are named by rule, before the nearest of the other four (blue-grey also where it is
# nearest), placed by AUC against dermatologists' labels on derm7pt's calibrate part (benchmarks/
# measure_derm7pt.py, docs/measure.md):
WHITE_LIGHTNESS = 55.0  # white: L* above this (lighter than blue-grey's mid lightness) ...
WHITE_YELLOW = 8.0  # ... b* below this (less yellow than the skin, b* 9, and any brown) ...
WHITE_CHROMA = 15.0  # ... chroma below this (whitish: a pale pink is white, a saturated pink red) ...
WHITE_FROM_SKIN = 3.0  # ... and at least this far (CIE76) from the skin: white may be as close to it as this
BLUE_GREY_LIGHTNESS = (20.0, 55.0)  # blue-grey: L* between these (darker than white, lighter than black) ...
BLUE_GREY_YELLOW = 6.0  # ... b* below this and chroma below BLUE_GREY_CHROMA (grey or bluish, not brown), as
BLUE_GREY_CHROMA = 20.0  # well as what is nearest its PALETTE position
RED_MARGIN = 27.0  # red: a* - RED_YELLOW b* above this (hue about 30 degrees or less, saturated: vessels) ...
RED_YELLOW = 0.5
LIGHT_RED_MARGIN = 12.0  # ... or above this where L* is above LIGHT_RED_LIGHTNESS (erythema, pink, light vessels:
LIGHT_RED_LIGHTNESS = 55.0  # redder than the skin, a* - 0.5 b* 5.5, and than light brown's 5)
GLARE_SRGB = 245  # glare: all three channels at least this bright (0-255) before normalisation; left out
RING = (0.05, 0.25)  # the skin ring: from this far to this far outside the lesion, in lesion diameters


def linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB in 0-1 to linear light."""
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


LINEAR = linear(np.arange(256) / 255.0).astype(np.float32)  # uint8 sRGB -> linear light, by lookup
# linear sRGB (D65) -> CIE XYZ, IEC 61966-2-1
XYZ_OF_RGB = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]], np.float32)


SKIN_LINEAR = linear(np.asarray(SKIN_REFERENCE))


def skin_ring(mask: np.ndarray, diameter: float) -> np.ndarray:
    """The pixels from RING[0] to RING[1] lesion diameters outside the lesion, where the image has them."""
    distance = ndimage.distance_transform_edt(~mask)
    return (distance > max(1.0, RING[0] * diameter)) & (distance <= max(3.0, RING[1] * diameter))


def skin_colour(image: np.ndarray, ring: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The skin's colour in linear RGB (`image` is linear RGB too): the median of the ring, without its darkest
    quarter (hairs, shadows, the dermoscope's dark corners); the brighter half of everything outside the lesion
    where the ring is too small. Where the lesion leaves less than 20 pixels of skin, the skin is taken to have
    the reference colour: the image is not normalised (normalised against itself, the lesion would be skin)."""
    for region, keep in ((ring, 0.25), (~mask, 0.5)):
        if region.sum() >= 20:
            pixels = image[region]
            brightness = pixels.sum(1)
            return np.median(pixels[brightness >= np.quantile(brightness, keep)], axis=0)
    return SKIN_LINEAR


def normalised_lab(image: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of the image (linear RGB) as it would look if its skin had the colour SKIN_REFERENCE."""
    gain = (SKIN_LINEAR / np.maximum(skin, 1e-4)).astype(np.float32)
    return xyz2lab(np.clip(image * gain, 0.0, 1.0) @ XYZ_OF_RGB.T)


LAB_STEPS = 1 << 16  # lab_of_pixels: CIELAB's cube root by lookup, X/Xn, Y/Yn and Z/Zn in this many steps of 0-1
_STEP = np.linspace(0.0, 1.0, LAB_STEPS)
CUBE_ROOT = np.where(_STEP > 0.008856, np.cbrt(_STEP), 7.787 * _STEP + 16.0 / 116.0).astype(np.float32)
XN_OF_RGB = (XYZ_OF_RGB / XYZ_OF_RGB.sum(1, keepdims=True)).T.astype(np.float32)  # linear RGB -> X/Xn, Y/Yn, Z/Zn


def lab_of_pixels(pixels: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """normalised_lab of uint8 sRGB pixels (n, 3), within 0.06 of it and about twice as fast (the cube root
    by lookup): for the colour names, on many more pixels than the folds'."""
    gain = (SKIN_LINEAR / np.maximum(skin, 1e-4)).astype(np.float32)
    ratio = np.clip(LINEAR[pixels] * gain, 0.0, 1.0) @ XN_OF_RGB
    f = CUBE_ROOT[np.minimum((ratio * (LAB_STEPS - 1) + 0.5).astype(np.int32), LAB_STEPS - 1)]
    return np.stack([116.0 * f[:, 1] - 16.0, 500.0 * (f[:, 0] - f[:, 1]), 200.0 * (f[:, 1] - f[:, 2])], -1)


SKIN_LAB = rgb2lab(np.array([[SKIN_REFERENCE]]))[0, 0]
PALETTE_LAB = np.array(list(PALETTE.values()))
NEAREST_OF = np.array([i for i, n in enumerate(COLOUR_NAMES) if n not in ("white", "red")])  # by distance
PALETTE_NEAREST = PALETTE_LAB[NEAREST_OF]
TABLE_LAB = rgb2lab(np.array([list(TABLE_COLOURS.values())]))[0]


def nearest_colours(lab: np.ndarray) -> np.ndarray:
    """For CIELAB pixels (n, 3), the index of their colour (0-5, in the order of COLOUR_NAMES; 6: skin): skin
    within SKIN_DIFFERENCE of the normalised skin, but white that is WHITE_FROM_SKIN from it; else white by its
    rule (WHITE_*: a pale, whitish pixel is white, though a light red one too), red by its (RED_*,
    LIGHT_RED_*), blue-grey by its (BLUE_GREY_*); else the nearest of light brown, dark brown, blue-grey and
    black in PALETTE by CIE76 distance."""
    names = NEAREST_OF[((PALETTE_NEAREST**2).sum(1) - 2 * lab @ PALETTE_NEAREST.T).argmin(1)]  # |x - p|^2 less |x|^2
    lightness, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    chroma2 = a * a + b * b
    grey = (lightness > BLUE_GREY_LIGHTNESS[0]) & (lightness < BLUE_GREY_LIGHTNESS[1]) & (b < BLUE_GREY_YELLOW)
    names[grey & (chroma2 < BLUE_GREY_CHROMA**2)] = COLOUR_NAMES.index("blue_grey")
    redness = a - RED_YELLOW * b
    red = (redness > RED_MARGIN) | ((redness > LIGHT_RED_MARGIN) & (lightness > LIGHT_RED_LIGHTNESS))
    names[red] = COLOUR_NAMES.index("red")
    white = (lightness > WHITE_LIGHTNESS) & (b < WHITE_YELLOW) & (chroma2 < WHITE_CHROMA**2)
    names[white] = COLOUR_NAMES.index("white")
    from_skin = ((lab - SKIN_LAB) ** 2).sum(-1)
    names[(from_skin < SKIN_DIFFERENCE**2) & ~(white & (from_skin >= WHITE_FROM_SKIN**2))] = len(COLOUR_NAMES)
    return names


def present_shares() -> dict[str, float]:
    """The share of the lesion from which each of the six colours counts as present (colour_count): PRESENT_BY_RULE,
    and for white and red the learned model's present_share (where its fit says the labels more likely say
    present)."""
    learned = dict(zip(LEARNED, bundled_pixel_model().present_share.tolist(), strict=True))
    shares = {**PRESENT_BY_RULE, **learned}
    return {name: shares[name] for name in COLOUR_NAMES}


NOT_ON_SKIN = ("red",)  # a pixel the rules call skin has none of these learned colours (red is redder than the
# skin; white may be as close to it as a scar is): without it, a mask drawn over plain skin counted red


def off_skin(learned: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """The learned model's probabilities (n, len(LEARNED)) of pixels of CIELAB `lab` (n, 3), with those of
    NOT_ON_SKIN 0 where the rules call the pixel skin."""
    on_skin = nearest_colours(lab) == len(COLOUR_NAMES)
    return np.where(on_skin[:, None] & np.isin(LEARNED, NOT_ON_SKIN), 0.0, learned)


def colour_fractions(lab: np.ndarray, learned: np.ndarray, learned_lab: np.ndarray) -> dict[str, float]:
    """The fraction of the lesion's counted pixels (CIELAB, (n, 3); hairs and glare left out) given each colour,
    how many of the six cover at least their present_shares of it, and the fraction named skin. White's and red's
    fractions are the mean of the learned model's probabilities `learned` (m, len(LEARNED)) of the pixels it ran
    on (CIELAB `learned_lab`, (m, 3)), taken off_skin."""
    *fractions, skin = np.bincount(nearest_colours(lab), minlength=len(COLOUR_NAMES) + 1) / max(1, len(lab))
    learned = off_skin(learned, learned_lab)
    named = dict(zip(COLOUR_NAMES, fractions, strict=True))
    named.update(zip(LEARNED, learned.mean(0) if len(learned) else np.zeros(len(LEARNED)), strict=True))
    result: dict[str, float] = {f"colour_{name}": round(float(f), 4) for name, f in named.items()}
    present = present_shares()
    result["colour_count"] = int(sum(f >= present[name] for name, f in named.items()))
    result["colour_skin"] = round(float(skin), 4)
    return result
