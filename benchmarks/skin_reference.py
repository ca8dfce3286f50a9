"""The median colour of the skin around lesions in the ISIC 2018 training images (with their expert masks): the
colour that `skinseg measure` normalises every image's skin to (measurement.colour.SKIN_REFERENCE).

    python benchmarks/skin_reference.py [--every N] [--isic DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from skinseg.data.images import load_mask, load_rgb
from skinseg.measurement.colour import LINEAR, skin_colour, skin_ring

ISIC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isic2018"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--every", type=int, default=1, help="take every N-th image")
    parser.add_argument("--isic", type=Path, default=ISIC, help="the ISIC 2018 folder (default: ../shared/data)")
    args = parser.parse_args(argv)
    skins = []
    for image_path in sorted((args.isic / "ISIC2018_Task1-2_Training_Input").glob("*.jpg"))[:: args.every]:
        mask_path = args.isic / "ISIC2018_Task1_Training_GroundTruth" / f"{image_path.stem}_segmentation.png"
        mask = load_mask(mask_path)
        image = LINEAR[load_rgb(image_path)]
        skins.append(skin_colour(image, skin_ring(mask, np.sqrt(4 * mask.sum() / np.pi)), mask))
    median = np.median(np.array(skins), axis=0)
    srgb = np.where(median <= 0.0031308, median * 12.92, 1.055 * median ** (1 / 2.4) - 0.055)
    print(f"{len(skins)} images: median skin sRGB {tuple(round(float(c), 3) for c in srgb)}")


if __name__ == "__main__":
    main()
