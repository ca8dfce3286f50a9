"""docs/measure-samples.png: the sample lesions with their outline, the two axes of the asymmetry fold, the
colours found, and their measurements.

    python scripts/measure_figure.py [--out docs/measure-samples.png]
"""

from __future__ import annotations

import argparse
import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from skinseg.data.images import load_mask, load_rgb
from skinseg.measurement import measure_lesion
from skinseg.measurement.colour import (
    COLOUR_NAMES,
    GLARE_SRGB,
    LINEAR,
    TABLE_COLOURS,
    nearest_colours,
    normalised_lab,
    off_skin,
    present_shares,
    skin_colour,
    skin_ring,
)
from skinseg.measurement.colour_model import LEARNED, bundled_pixel_model, pixel_features
from skinseg.measurement.hair import hair_mask
from skinseg.measurement.lesion import COLOUR_DIAMETER

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SKIN_SHOWN = (0.55, 0.85, 0.55)  # lesion pixels named skin: pale green
LEFT_OUT_SHOWN = (1.0, 0.0, 1.0)  # hairs and glare, left out of the colours: magenta
LEARNED_SHOWN = 0.5  # white and red painted where the learned model's probability is at least this


def colour_map(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each lesion pixel painted with the table colour of its name (white and red where the learned model gives
    them a probability of LEARNED_SHOWN or more), hairs and glare (left out) in magenta, at the
    resolution where measure_lesion names colours (the lesion COLOUR_DIAMETER pixels across), shown enlarged."""
    diameter = math.sqrt(4 * mask.sum() / math.pi)
    scale = min(1.0, COLOUR_DIAMETER / diameter)
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    lesion = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.BILINEAR)) > 127
    rgb = LINEAR[small]
    lab = normalised_lab(rgb, skin_colour(rgb, skin_ring(lesion, diameter * scale), lesion))
    names = nearest_colours(lab[lesion].reshape(-1, 3))
    left_out_map = hair_mask(small.max(-1)) | (small.min(-1) >= GLARE_SRGB)
    left_out = left_out_map[lesion]
    counted = lesion & ~left_out_map
    learned = np.zeros((lesion.sum(), len(LEARNED)))
    probabilities = bundled_pixel_model().probabilities(pixel_features(lab, lesion, counted, most=None))
    learned[~left_out] = off_skin(probabilities, lab[counted])  # as the columns take them
    likely = learned.max(1) >= LEARNED_SHOWN
    names[likely] = np.array([COLOUR_NAMES.index(n) for n in LEARNED])[learned.argmax(1)[likely]]
    swatches = np.array([*TABLE_COLOURS.values(), SKIN_SHOWN, LEFT_OUT_SHOWN])
    shown = small / 255.0 * 0.35
    shown[lesion] = swatches[np.where(left_out, len(swatches) - 1, names)]
    return np.asarray(Image.fromarray(np.uint8(shown * 255)).resize(image.shape[1::-1], Image.Resampling.NEAREST))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/measure-samples.png"))
    args = parser.parse_args(argv)
    images = sorted((SAMPLES / "images").glob("*.jpg"))
    fig, axes = plt.subplots(2, len(images), figsize=(4.2 * len(images), 10.4))
    for column, path in enumerate(images):
        image = load_rgb(path)
        mask = load_mask(SAMPLES / "masks" / f"{path.stem}_segmentation.png")
        row = measure_lesion(image, mask)
        top, bottom = axes[0, column], axes[1, column]
        top.imshow(image)
        top.contour(mask, levels=[0.5], colors="yellow", linewidths=1)
        cx, cy, half = row["centre_x"], row["centre_y"], row["diameter_px"] / 2
        for turn in (0.0, 90.0):
            angle = math.radians(row["asymmetry_angle"] + turn)
            top.plot(
                [cx - half * math.cos(angle), cx + half * math.cos(angle)],
                [cy - half * math.sin(angle), cy + half * math.sin(angle)],
                color="cyan",
                linewidth=1,
            )
        top.set_title(path.stem, fontsize=11)
        bottom.imshow(colour_map(image, mask))
        found = [name for name, share in present_shares().items() if row[f"colour_{name}"] >= share]  # counted
        colours = ", ".join(f"{name.replace('_', ' ')} {row[f'colour_{name}']:.0%}" for name in found)
        bottom.text(
            0.5,
            -0.03,
            f"asymmetry {row['asymmetry']:.2f} ({row['asymmetry_axes']} axes: shape {row['asymmetry_shape']:.2f},\n"
            f"colour {row['asymmetry_colour']:.2f}, structure {row['asymmetry_structure']:.2f})\n"
            f"diameter {row['diameter_px']:.0f} px, border irregularity {row['border_irregularity']:.2f},\n"
            f"abruptness {row['border_abruptness']:.1f}; {row['colour_count']} colours:\n{colours}",
            fontsize=9,
            ha="center",
            va="top",
            transform=bottom.transAxes,
        )
        for axis in (top, bottom):
            axis.set_axis_off()
    shown = [*TABLE_COLOURS.values(), SKIN_SHOWN, LEFT_OUT_SHOWN]
    swatches = [plt.Rectangle((0, 0), 1, 1, color=c) for c in shown]
    labels = [n.replace("_", " ") for n in COLOUR_NAMES] + ["skin", "hair or glare (left out)"]
    fig.legend(swatches, labels, loc="lower center", ncol=8, frameon=False)
    fig.suptitle("skinseg measure on the sample images (expert masks): axes of the fold in cyan", fontsize=12)
    fig.tight_layout(rect=(0, 0.13, 1, 0.97))
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=64)
    picture = Image.open(buffer).convert("RGB")  # 256 colours: a quarter of the bytes, no visible loss
    picture.quantize(256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
