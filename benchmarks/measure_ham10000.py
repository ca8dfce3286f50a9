"""How well each measurement of `skinseg measure` separates melanoma from naevi on HAM10000 (AUC), on the true
masks and on the model's, beside two baselines, and the colours found per diagnosis.

    python benchmarks/measure_ham10000.py --split val [--model-masks [--model M]] [--ham DIR] [--json FILE]
        [--hairs-in] [--rows FILE]

The split is prepare's default (60/20/20 by lesion_id, seed 0), so the model never trained on the val and test
images. Choose settings on val; report test once. Baselines: a shape-only fold (the mask folded about its two
principal axes, the share of it outside its mirror image) and, for colours, each pixel's nearest reference colour
without normalisation. AUC: melanoma (dx mel) against naevi (dx nv), 0.5 = no separation; a measurement that is
lower in melanoma shows below 0.5.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from skimage.color import rgb2lab

from skinseg.data.images import load_mask, load_rgb
from skinseg.data.splits import assign_splits
from skinseg.evaluation.metrics import rank_auc as auc
from skinseg.measurement import MEASURE_COLUMNS, lesion, measure_lesion
from skinseg.measurement.asymmetry import folds, principal_angle
from skinseg.measurement.colour import COLOUR_NAMES, TABLE_LAB, present_shares
from skinseg.runtime.precision import cpu_name

HAM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ham10000"
NUMBERS = [c for c in MEASURE_COLUMNS if c not in ("id", "centre_x", "centre_y", "bbox_x", "bbox_y", "confidence")]
NUMBERS = [c for c in NUMBERS if not c.endswith(("_mm", "_mm2"))]


def baselines(image: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    angle = principal_angle(mask)
    shape = folds(mask, np.zeros((*mask.shape, 3)), np.zeros(mask.shape), np.array([angle, angle + math.pi / 2]))
    lab = rgb2lab(image[mask])
    nearest = ((lab[:, None, :] - TABLE_LAB[None, :, :]) ** 2).sum(-1).argmin(1)
    fractions = np.bincount(nearest, minlength=len(COLOUR_NAMES)) / len(lab)
    row = {"baseline_shape_fold": float(shape["shape"].mean())}
    row.update({f"baseline_colour_{n}": float(f) for n, f in zip(COLOUR_NAMES, fractions, strict=True)})
    row["baseline_colour_count"] = int((fractions >= 0.05).sum())
    return row


def split_images(ham: Path, split: str) -> list[dict]:
    """The metadata rows of one split (`all`: every image)."""
    with open(ham / "HAM10000_metadata.csv", newline="") as handle:
        meta = list(csv.DictReader(handle))
    ids = [row["image_id"] for row in meta]
    splits = assign_splits(ids, (0.6, 0.2, 0.2), 0, groups={r["image_id"]: r["lesion_id"] for r in meta})
    return [row for row, s in zip(meta, splits, strict=True) if split in (s, "all")]


def measure_all(ham: Path, images: list[dict], model: Path | bool | None) -> list[dict]:
    """One row per image: measured on its true mask, with the baselines, and on the model's mask unless `model`
    is False (None: the bundled model)."""
    segmenter = None
    if model is not False:
        from skinseg.inference.segmenter import Segmenter

        segmenter = Segmenter(model or None)
    rows = []
    for meta in images:
        image = load_rgb(ham / "HAM10000_images" / f"{meta['image_id']}.jpg")
        truth = load_mask(ham / "HAM10000_segmentations_lesion_tschandl" / f"{meta['image_id']}_segmentation.png")
        row = {"id": meta["image_id"], "dx": meta["dx"], **measure_lesion(image, truth), **baselines(image, truth)}
        if segmenter is not None:
            prob = segmenter.probabilities([image])[0]
            mask = segmenter.masks_from([prob])[0]
            model = measure_lesion(image, mask, probability=prob, threshold=segmenter.threshold, one_lesion=True)
            row.update({f"model_{k}": v for k, v in model.items()})
        rows.append(row)
    return rows


def auc_table(rows: list[dict], prefix: str = "") -> dict[str, float]:
    chosen = [r for r in rows if r["dx"] in ("mel", "nv") and r.get(f"{prefix}area_px")]
    positive = np.array([r["dx"] == "mel" for r in chosen])
    return {name: auc(np.array([float(r[f"{prefix}{name}"]) for r in chosen]), positive) for name in NUMBERS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ham", type=Path, default=HAM, help="the HAM10000 folder (default: ../shared/data/ham10000)")
    parser.add_argument("--split", default="val", choices=("train", "val", "test", "all"))
    parser.add_argument("--model-masks", action="store_true", help="also measure on the model's masks")
    parser.add_argument("--model", type=Path, default=None, help="with --model-masks (default: the bundled model)")
    parser.add_argument("--limit", type=int, default=0, help="the first N images only")
    parser.add_argument("--hairs-in", action="store_true", help="count hair pixels in the colours (as before #34)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--rows", type=Path, default=None, help="also write every measured row (CSV)")
    args = parser.parse_args(argv)
    if args.hairs_in:  # no pixel is hair
        lesion.hair_mask = lambda value: np.zeros(value.shape, bool)
    images = split_images(args.ham, args.split)[: args.limit or None]
    started = time.perf_counter()
    rows = measure_all(args.ham, images, (args.model or None) if args.model_masks else False)
    chosen = [r for r in rows if r["dx"] in ("mel", "nv")]
    positive = np.array([r["dx"] == "mel" for r in chosen])
    baseline = {k: auc(np.array([r[k] for r in chosen]), positive) for k in rows[0] if k.startswith("baseline_")}
    present = present_shares()
    by_dx = {
        dx: {
            "images": sum(r["dx"] == dx for r in rows),
            **{
                name: float(np.mean([r[f"colour_{name}"] >= present[name] for r in rows if r["dx"] == dx]))
                for name in COLOUR_NAMES
            },
            "colour_count": float(np.mean([r["colour_count"] for r in rows if r["dx"] == dx])),
            "asymmetry_axes": float(np.mean([r["asymmetry_axes"] for r in rows if r["dx"] == dx])),
        }
        for dx in sorted({r["dx"] for r in rows})
    }
    result = {
        "split": args.split,
        "hairs_in": args.hairs_in,
        "images": len(rows),
        "melanoma": int(positive.sum()),
        "naevi": int((~positive).sum()),
        "machine": cpu_name(),
        "seconds": round(time.perf_counter() - started, 1),
        "auc_true_masks": auc_table(rows),
        "auc_model_masks": auc_table(rows, "model_") if args.model_masks else None,
        "auc_baselines": baseline,
        "presence_by_dx": by_dx,
        "asymmetry_vs_shape_fold_spearman": float(
            spearmanr([r["asymmetry"] for r in rows], [r["baseline_shape_fold"] for r in rows])[0]
        ),
    }
    print(json.dumps({k: v for k, v in result.items()}, indent=1))
    if args.rows:  # every measured row, to compare two runs image by image
        with open(args.rows, "w", newline="") as handle:
            writer = csv.DictWriter(handle, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
