"""Small builders of fixture trees for the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from skinseg.data.synthetic import synthetic_pair


def write_pair(image_path: Path, mask_path: Path, size: int = 32, seed: int = 0, image_format: str | None = None,
               mask_values: tuple[int, int] = (0, 255)) -> None:
    image, mask = synthetic_pair(size, seed)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(image_path, format=image_format)
    low, high = mask_values
    Image.fromarray(np.where(mask, high, low).astype(np.uint8)).save(mask_path)


def isic2018_tree(root: Path, count: int = 6, size: int = 32) -> Path:
    for i in range(count):
        write_pair(root / "ISIC2018_Task1-2_Training_Input" / f"ISIC_{i:07d}.jpg",
                   root / "ISIC2018_Task1_Training_GroundTruth" / f"ISIC_{i:07d}_segmentation.png", size, i)
    return root
