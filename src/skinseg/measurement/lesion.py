"""measure_lesion: every measurement of one lesion, from its image and mask."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from skinseg.errors import check_pixel_size, check_rgb_image, check_setting, check_threshold
from skinseg.measurement.asymmetry import asymmetry_measures
from skinseg.measurement.border import border_abruptness
from skinseg.measurement.colour import (
    COLOUR_NAMES,
    GLARE_SRGB,
    LINEAR,
    RING,
    colour_fractions,
    lab_of_pixels,
    normalised_lab,
    skin_colour,
    skin_ring,
)
from skinseg.measurement.colour_model import FEATURES, bundled_pixel_model, pixel_features
from skinseg.measurement.hair import hair_mask
from skinseg.measurement.shape import shape_measures


def _mm_column(name: str) -> str:
    """The column of a size in mm: area_mm2, else <name>_mm."""
    return f"{name}_mm2" if name == "area" else f"{name}_mm"


WORK_DIAMETER = 64  # asymmetry and border are measured with the lesion scaled to this diameter (px)
WORK_SIDE = 4 * WORK_DIAMETER  # ... on a cut of the image at most this many pixels across
TINY_DIAMETER = WORK_DIAMETER // 4  # px: a narrower lesion is enlarged more than 4x; its measures rest on pixel steps
COLOUR_DIAMETER = 128  # colours are named with the lesion at most this many pixels across ...
COLOUR_MARGIN = 0.05  # ... on a cut this far round it (lesion diameters; 6 px or more there, 2 px more cut)
# The two cuts, as _work_area and _cut_box take them: (target diameter, enlarged, margin in lesion diameters)
WORK_CUT = (WORK_DIAMETER, True, RING[1])
COLOUR_CUT = (COLOUR_DIAMETER, False, COLOUR_MARGIN)
SIZE_COLUMNS = ("area", "perimeter", "diameter", "equivalent_diameter")
MEASURE_COLUMNS = (
    "id",
    *(f"{name}_px" for name in SIZE_COLUMNS),
    *(_mm_column(name) for name in SIZE_COLUMNS),
    "centre_x", "centre_y", "bbox_x", "bbox_y", "bbox_width", "bbox_height", "components",
    "asymmetry", "asymmetry_axes", "asymmetry_angle", "asymmetry_shape", "asymmetry_colour", "asymmetry_structure",
    "border_irregularity", "border_abruptness",
    *(f"colour_{name}" for name in COLOUR_NAMES), "colour_count", "colour_skin",
    "confidence",
)  # fmt: skip


@dataclass(frozen=True)
class CutBox:
    """Where a cut of the image lies: its rows y0:y1 and columns x0:x1, and its size (width, height) once resized."""

    y0: int
    y1: int
    x0: int
    x1: int
    size: tuple[int, int]

    def onto(self, values: np.ndarray, other: CutBox) -> np.ndarray:
        """`values` (bool, this cut's height and width) at the pixels of the `other` cut, each from the pixel of
        this cut under its centre; False where this cut does not reach."""

        def axis(start: int, stop: int, count: int, other_start: int, other_stop: int, other_count: int):
            centres = other_start + (np.arange(other_count) + 0.5) * (other_stop - other_start) / other_count
            index = np.floor((centres - start) * count / (stop - start)).astype(np.intp)
            return index.clip(0, count - 1), (index >= 0) & (index < count)

        rows, rows_in = axis(self.y0, self.y1, self.size[1], other.y0, other.y1, other.size[1])
        columns, columns_in = axis(self.x0, self.x1, self.size[0], other.x0, other.x1, other.size[0])
        return values[np.ix_(rows, columns)] & rows_in[:, None] & columns_in[None, :]


def _cut_box(shape: tuple[int, ...], sizes: dict, target: float, enlarge: bool, margin: float) -> tuple[CutBox, float]:
    """The box of a _work_area cut and its scale (cut pixels per image pixel)."""
    diameter = max(1.0, sizes["equivalent_diameter_px"])
    margin = math.ceil(margin * diameter) + 2
    y0, x0 = max(0, sizes["bbox_y"] - margin), max(0, sizes["bbox_x"] - margin)
    y1 = min(shape[0], sizes["bbox_y"] + sizes["bbox_height"] + margin)
    x1 = min(shape[1], sizes["bbox_x"] + sizes["bbox_width"] + margin)
    scale = min(target / diameter, 4 * target / max(x1 - x0, y1 - y0), math.inf if enlarge else 1.0)
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    return CutBox(y0, y1, x0, x1, size), scale


def _work_area(
    image: np.ndarray,
    mask: np.ndarray,
    sizes: dict,
    target: float = WORK_CUT[0],
    enlarge: bool = WORK_CUT[1],
    margin: float = WORK_CUT[2],
) -> tuple[np.ndarray, np.ndarray, float]:
    """The lesion and a skin ring around it (`margin` lesion diameters wide), cut from the image and scaled so
    that the lesion's equivalent diameter is `target` pixels (never enlarged unless `enlarge`), the cut at most
    4 * `target` pixels across (a mask of scattered specks has a small area in a large box): (uint8 RGB, mask,
    the lesion's equivalent diameter there). Where it lies: _cut_box."""
    box, scale = _cut_box(mask.shape, sizes, target, enlarge, margin)
    y0, y1, x0, x1, size = box.y0, box.y1, box.x0, box.x1, box.size
    # Enlarged, pixels are repeated: blending would paint a skin-coloured rim round a small lesion.
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BILINEAR
    crop = Image.fromarray(np.ascontiguousarray(image[y0:y1, x0:x1])).resize(size, resample)
    lesion = Image.fromarray(mask[y0:y1, x0:x1].astype(np.uint8) * 255).resize(size, Image.Resampling.BILINEAR)
    small = np.asarray(lesion) > 127
    if not small.any():  # a lesion of a pixel or two: its nearest pixel
        small = np.zeros_like(small)
        small[
            min(size[1] - 1, round((sizes["centre_y"] - y0) * scale)),
            min(size[0] - 1, round((sizes["centre_x"] - x0) * scale)),
        ] = True
    return np.asarray(crop), small, max(1.0, sizes["equivalent_diameter_px"]) * scale


def colour_pixels(
    image: np.ndarray, mask: np.ndarray, sizes: dict, skin: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The lesion where colours are named: a cut of it COLOUR_DIAMETER pixels across (the hair filter's scale;
    on derm7pt's calibrate part 192 px named colours no better, at about 1.3 times the cost), normalised against
    `skin` (linear RGB). Returns the cut's CIELAB (h, w, 3), the pixels counted (the lesion without hairs and
    glare, unless that leaves none), their colour_model FEATURES and the hairs (bool, (h, w))."""
    cut, lesion, _ = _work_area(image, mask, sizes, *COLOUR_CUT)
    lab = lab_of_pixels(cut.reshape(-1, 3), skin).reshape(cut.shape)
    glare = (cut[..., 0] >= GLARE_SRGB) & (cut[..., 1] >= GLARE_SRGB) & (cut[..., 2] >= GLARE_SRGB)
    brightest = np.maximum(np.maximum(cut[..., 0], cut[..., 1]), cut[..., 2])  # as cut.max(-1), faster
    hairs = hair_mask(brightest)
    counted = lesion & ~(hairs | glare)
    if not counted.any():  # all hair or glare: better its colours than none
        counted = lesion
    return lab, counted, pixel_features(lab, lesion, counted), hairs


def _colours(lab: np.ndarray, counted: np.ndarray, features: np.ndarray) -> dict[str, float]:
    """The colour columns of colour_pixels' cut: white and red by the learned pixel model, the rest by colour.py's
    rules."""
    learned_lab = features[:, [FEATURES.index(name) for name in ("lightness", "a", "b")]].astype(np.float64)
    return colour_fractions(lab[counted], bundled_pixel_model().probabilities(features), learned_lab)


def _hairs_in_work_area(hairs: np.ndarray, mask: np.ndarray, sizes: dict) -> np.ndarray:
    """The hairs found on colour_pixels' cut, at the pixels of the _work_area cut (the skin beyond the colour
    cut's margin has none)."""
    colour_box, _ = _cut_box(mask.shape, sizes, *COLOUR_CUT)
    work_box, _ = _cut_box(mask.shape, sizes, *WORK_CUT)
    return colour_box.onto(hairs, work_box)


def lesion_colour_features(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The colour_model FEATURES of the pixels on which measure_lesion runs the learned colour model, as it does
    (for fitting that model: scripts/fit_colour_model.py)."""
    mask = _checked(image, mask)
    sizes = shape_measures(mask, connected_parts=False)
    cut, small, diameter = _work_area(image, mask, sizes)
    return colour_pixels(image, mask, sizes, _skin(cut, small, diameter))[2]


def _skin(cut: np.ndarray, small: np.ndarray, diameter: float) -> np.ndarray:
    """The skin colour (linear RGB) of a _work_area cut."""
    return skin_colour(LINEAR[cut], skin_ring(small, diameter), small)


def _checked(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mask as bool; a mask that is not one (bool, 0/1 or 0/255) or does not fit the image is refused, so
    that a wrong array never gives numbers."""
    image, mask = np.asarray(image), np.asarray(mask)
    check_rgb_image(image)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"the mask is {mask.shape}, the image {image.shape[:2]}: they must agree")
    if mask.dtype == bool:
        return mask
    values = set(np.unique(mask).tolist())
    if not (values <= {0, 1} or values <= {0, 255}):
        raise ValueError(f"a mask is bool, 0/1 or 0/255; this one holds {sorted(values)[:5]}")
    return mask > 0


def measure_lesion(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    pixel_size: float | None = None,
    probability: np.ndarray | None = None,
    threshold: float = 0.5,
    one_lesion: bool = False,
) -> dict[str, float | int | None]:
    """The measurements of MEASURE_COLUMNS (without `id`) of the lesion `mask` (bool, the image's height and
    width) in `image` (uint8 RGB). `pixel_size`: mm per pixel, for the _mm columns. `probability`: the model's
    map, for `confidence`. `one_lesion`: the mask is known to be one lesion (the model's post-processed mask),
    else its connected parts are counted. An empty mask gives its area (0) and nothing else."""
    mask = _checked(image, mask)
    check_pixel_size(pixel_size)  # a negative or NaN one gave negative or NaN sizes in mm
    if probability is not None:
        check_threshold(threshold)
        shape = np.shape(probability)
        check_setting(shape == mask.shape, f"`probability` is {shape}, the mask {mask.shape}: they must agree")
    row: dict[str, float | int | None] = dict.fromkeys(MEASURE_COLUMNS[1:])
    row["area_px"] = 0
    if not mask.any():
        return row
    sizes = shape_measures(mask, connected_parts=not one_lesion)
    row.update(sizes)
    if pixel_size is not None:
        for name in SIZE_COLUMNS:
            factor = pixel_size**2 if name == "area" else pixel_size
            row[_mm_column(name)] = round(float(sizes[f"{name}_px"]) * factor, 4)
    cut, small, diameter = _work_area(image, mask, sizes)
    skin = _skin(cut, small, diameter)
    colour_lab, counted, features, hairs = colour_pixels(image, mask, sizes, skin)
    hairs = _hairs_in_work_area(hairs, mask, sizes)  # left out of the structure and the colours compared
    lab = normalised_lab(LINEAR[cut], skin)
    row.update(asymmetry_measures(small, lab, diameter, hairs))
    abruptness = border_abruptness(small, lab, hairs) * diameter / 100  # per 1% of the diameter
    row["border_abruptness"] = round(abruptness, 3)
    row.update(_colours(colour_lab, counted, features))
    if probability is not None:
        margin = np.clip((probability[mask] - threshold) / (1.0 - threshold), 0.0, 1.0)
        row["confidence"] = round(float(margin.mean()), 4)
    return row
