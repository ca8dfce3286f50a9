"""Masks as COCO instance annotations (one category, `lesion`; polygons, box and area), the format that CVAT and
Label Studio import."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.measure import approximate_polygon, find_contours

from skinseg import __version__
from skinseg.fileio import write_text
from skinseg.measurement.shape import bounding_box

CATEGORY = {"id": 1, "name": "lesion", "supercategory": "skin"}
TOLERANCE = 0.5  # pixels a simplified outline may stray from the traced one (IoU >= 0.999 on HAM10000 masks)


def mask_polygons(mask: np.ndarray) -> list[list[float]]:
    """The outline of each 4-connected part of the mask (parts that touch at a corner are two: an outline follows
    pixel edges), as COCO polygons [x1, y1, x2, y2, ...] in COCO's
    coordinates (pixel (row i, column j) covers x in [j, j + 1), y in [i, i + 1)). Holes are not kept: a polygon
    has none."""
    labels, _ = ndimage.label(mask)
    polygons = []
    for index, part in enumerate(ndimage.find_objects(labels), 1):
        y, x = part[0].start, part[1].start
        # Traced on the part doubled in size, the outline cuts a corner pixel by a quarter of it, not a half:
        # COCO's rasteriser (a pixel is in when its centre is) then gives back every pixel.
        piece = np.kron(np.pad(labels[part] == index, 1), np.ones((2, 2), np.uint8))
        contour = max(find_contours(piece, 0.5), key=len)  # the outer one: holes are inside it
        outline = approximate_polygon(contour, 2 * TOLERANCE)[:-1]  # closed: the last point is the first
        if len(outline) < 3:
            outline = contour[:-1]
        xy = np.stack([(outline[:, 1] + 0.5) / 2 + x - 1, (outline[:, 0] + 0.5) / 2 + y - 1], 1)  # -1: the pad
        polygons.append([round(float(v), 2) for v in xy.ravel()])
    return polygons


class CocoFile:
    """Images and their lesion annotations gathered as the masks are made, written whole at the end."""

    def __init__(self) -> None:
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, file_name: str, mask: np.ndarray) -> None:
        """One image (its file name and size) and, unless its mask is empty, its lesion."""
        image_id = len(self.images) + 1
        height, width = mask.shape
        self.images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        polygons, box = mask_polygons(mask), bounding_box(mask)
        if not polygons or box is None:
            return
        x0, y0, x1, y1 = box
        self.annotations.append(
            {
                "id": len(self.annotations) + 1,
                "image_id": image_id,
                "category_id": CATEGORY["id"],
                "segmentation": polygons,
                "area": int(mask.sum()),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "iscrowd": 0,
            }
        )

    def write(self, path: Path) -> None:
        """The whole file, atomically."""
        document = {
            "info": {"description": "lesion masks from skinseg segment", "version": __version__},
            "licenses": [],
            "images": self.images,
            "annotations": self.annotations,
            "categories": [CATEGORY],
        }
        write_text(path, json.dumps(document) + "\n")
