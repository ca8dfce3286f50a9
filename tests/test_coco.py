"""skinseg.inference.coco: masks as COCO instance annotations that pycocotools reads back."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ISIC_DIR, REPO
from skinseg.data.images import load_mask
from skinseg.inference.coco import CocoFile, mask_polygons

pycocotools = pytest.importorskip("pycocotools.coco")


def read_back(path):
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it loads
        return pycocotools.COCO(str(path))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def round_trip(masks: dict[str, np.ndarray], path) -> list[float]:
    coco = CocoFile()
    for name, mask in masks.items():
        coco.add(name, mask)
    coco.write(path)
    loaded = read_back(path)
    ious = []
    for image in loaded.loadImgs(loaded.getImgIds()):
        mask = masks[image["file_name"]]
        assert (image["width"], image["height"]) == (mask.shape[1], mask.shape[0])
        annotations = loaded.loadAnns(loaded.getAnnIds(imgIds=image["id"]))
        assert len(annotations) == (1 if mask.any() else 0)
        for annotation in annotations:
            assert annotation["area"] == mask.sum() and annotation["category_id"] == 1
            rows, cols = np.nonzero(mask)
            assert annotation["bbox"] == [cols.min(), rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1]
            ious.append(iou(loaded.annToMask(annotation).astype(bool), mask))
    return ious


def test_the_real_sample_masks_come_back_from_pycocotools(tmp_path):
    masks = {p.name: load_mask(p) for p in sorted((REPO / "samples" / "masks").glob("*.png"))}
    ious = round_trip(masks, tmp_path / "coco.json")
    assert len(ious) == 4 and min(ious) >= 0.98
    document = json.loads((tmp_path / "coco.json").read_text())
    assert document["categories"] == [{"id": 1, "name": "lesion", "supercategory": "skin"}]


@pytest.mark.slow
def test_real_ham10000_masks_come_back_from_pycocotools(tmp_path):
    folder = ISIC_DIR.parent / "ham10000" / "HAM10000_segmentations_lesion_tschandl"
    if not folder.is_dir():
        pytest.skip("no ../shared/data/ham10000 here")
    masks = {p.name: load_mask(p) for p in sorted(folder.glob("*.png"))[:100]}
    ious = round_trip(masks, tmp_path / "coco.json")
    assert min(ious) >= 0.999  # as docs/segment.md says


def test_several_parts_and_an_empty_mask(tmp_path):
    two = np.zeros((40, 60), bool)
    two[5:15, 5:20] = True
    two[25:38, 40:58] = True
    edge = np.zeros((40, 60), bool)
    edge[0:40, 0:3] = True  # along the image's edge: outline on the border
    assert len(mask_polygons(two)) == 2
    corner = np.zeros((40, 60), bool)
    corner[5:20, 5:20] = corner[20:30, 20:30] = True  # one 8-connected part, two outlines
    assert len(mask_polygons(corner)) == 2
    masks = {"two.png": two, "none.png": np.zeros((40, 60), bool), "edge.png": edge, "corner.png": corner}
    ious = round_trip(masks, tmp_path / "c.json")
    assert min(ious) >= 0.98


def test_a_single_pixel_is_a_polygon_of_its_square():
    pixel = np.zeros((5, 5), bool)
    pixel[2, 3] = True
    (polygon,) = mask_polygons(pixel)
    xs, ys = polygon[0::2], polygon[1::2]
    assert min(xs) >= 3 and max(xs) <= 4 and min(ys) >= 2 and max(ys) <= 3


def test_segment_loads_the_coco_writer_only_when_asked(tmp_path):
    """Issue #35: COCO's polygon tracing imports scipy.signal, most of a second of a cold segment without --coco."""
    code = (
        "import sys\nimport skinseg.inference.segment\n"
        "print('skinseg.inference.coco' in sys.modules, 'scipy.signal' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["False", "False"]
