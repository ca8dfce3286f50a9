"""How well `skinseg measure`'s colour columns agree with dermatologists' labels on derm7pt (AUC per colour, with
bootstrap 95% intervals), and its colour count with the labels' count (Spearman).

    python benchmarks/measure_derm7pt.py --masks MASKS_DIR --part calibrate [--json FILE] [--measured CSV]

derm7pt has no masks: measure on the bundled model's, made once with
`skinseg segment '../shared/data/derm7pt/images/*/*.[jJ][pP][gG]' -o MASKS_DIR --precision fp32`.
`--measured CSV` scores the rows of an earlier `skinseg measure --csv` (by `id`) instead of measuring.

The split is fixed by the case's image path alone (the first byte of its SHA-256: even = calibrate, odd =
held-out), so it is the same on every machine and needs no file. Settings are chosen on the calibrate part;
the held-out part is scored once, at the end.

What the labels say (the data's README; Argenziano et al. 2003):
- white: regression's white areas or combinations, or the blue-whitish veil (blue with a white haze);
  `white_regression` is the stricter label, regression's white areas or combinations alone;
- blue_grey: regression's blue areas or combinations, or the veil;
- red: any vascular structure.
derm7pt labels no brown or black. As proxies, named so in the output: `light_brown` and `dark_brown` against a
brown melanocytic diagnosis (naevi but blue naevi, melanoma, lentigo, melanosis) rather than a keratosis, a
carcinoma, a vascular lesion, a dermatofibroma or a blue naevus; `black` against irregular pigmentation
(blotches) or irregular dots and globules. The labels' colour count is white + red + blue-grey + brown (the
proxy; 0-4); `colour_count` is compared with it by Spearman correlation.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from skinseg.data.images import load_mask, load_rgb
from skinseg.evaluation.metrics import rank_auc as auc
from skinseg.measurement import lesion, measure_lesion
from skinseg.runtime.precision import cpu_name

DERM7PT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "derm7pt"
COLUMNS = ("white", "white_regression", "red", "blue_grey", "light_brown", "dark_brown", "black")
PROXIES = ("light_brown", "dark_brown", "black")
BOOTSTRAP = 1000


def part_of(derm: str) -> str:
    """The case's part of the split, from its image path alone."""
    return "calibrate" if hashlib.sha256(derm.encode()).digest()[0] % 2 == 0 else "held-out"


def labels(case: dict) -> dict[str, bool]:
    """What the experts' criteria say about each colour (proxies for the browns and black)."""
    regression, veil = case["regression_structures"], case["blue_whitish_veil"] == "present"
    diagnosis = case["diagnosis"]
    brown = diagnosis.startswith(("melanoma", "lentigo", "melanosis")) or (
        "nevus" in diagnosis and diagnosis != "blue nevus"
    )
    return {
        "white": regression in ("white areas", "combinations") or veil,
        "white_regression": regression in ("white areas", "combinations"),
        "red": case["vascular_structures"] != "absent",
        "blue_grey": regression in ("blue areas", "combinations") or veil,
        "light_brown": brown,
        "dark_brown": brown,
        "black": "irregular" in case["pigmentation"] or case["dots_and_globules"] == "irregular",
    }


def cases(root: Path) -> list[dict]:
    with open(root / "meta.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["derm"] = row["derm"].replace("FCl/", "FCL/")  # the README: one row names the folder in lower case
        row["part"] = part_of(row["derm"])
        row["id"] = Path(row["derm"]).stem
    return rows


def with_interval(statistic, *arrays: np.ndarray, seed: int = 0) -> list[float]:
    """The statistic and its bootstrap 95% interval (percentiles of BOOTSTRAP resamples of the images)."""
    rng = np.random.default_rng(seed)
    n = len(arrays[0])
    draws = [statistic(*(a[pick] for a in arrays)) for pick in rng.integers(0, n, (BOOTSTRAP, n))]
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return [round(statistic(*arrays), 3), round(float(low), 3), round(float(high), 3)]


def measured_rows(root: Path, chosen: list[dict], masks: Path, csv_file: Path | None) -> dict[str, dict]:
    """The measurements of each chosen case by id: read from an earlier `skinseg measure --csv`, or measured."""
    if csv_file is not None:
        with open(csv_file, newline="") as handle:
            return {row["id"]: row for row in csv.DictReader(handle) if row["area_px"] not in ("", "0")}
    rows = {}
    for case in chosen:
        image = load_rgb(root / "images" / case["derm"])
        mask = load_mask(masks / f"{case['id']}_segmentation.png") > 0
        if mask.any():
            rows[case["id"]] = measure_lesion(image, mask, one_lesion=True)
    return rows


def score(chosen: list[dict], rows: dict[str, dict]) -> dict:
    chosen = [c for c in chosen if c["id"] in rows]
    truth = [labels(c) for c in chosen]
    result: dict = {"images": len(chosen), "auc": {}, "positives": {}}
    for name in COLUMNS:
        column = "colour_white" if name == "white_regression" else f"colour_{name}"
        scores = np.array([float(rows[c["id"]][column]) for c in chosen])
        positive = np.array([t[name] for t in truth])
        result["positives"][name] = int(positive.sum())
        result["auc"][name] = with_interval(auc, scores, positive)
    count = np.array([float(rows[c["id"]]["colour_count"]) for c in chosen])
    expert = np.array([sum(t[k] for k in ("white", "red", "blue_grey", "light_brown")) for t in truth], float)
    result["count_spearman"] = with_interval(lambda a, b: float(spearmanr(a, b)[0]), count, expert)
    labelled = [result["auc"][k][0] for k in ("white", "red", "blue_grey")]
    result["mean_auc_labelled"] = round(float(np.mean(labelled)), 3)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--derm7pt", type=Path, default=DERM7PT)
    parser.add_argument("--masks", type=Path, required=True, help="the model's masks (<id>_segmentation.png)")
    parser.add_argument("--part", default="calibrate", choices=("calibrate", "held-out", "all"))
    parser.add_argument("--measured", type=Path, default=None, help="score this `skinseg measure --csv` instead")
    parser.add_argument("--hairs-in", action="store_true", help="count hair pixels in the colours (as before)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--rows", type=Path, default=None, help="also write the measured rows (CSV, by id)")
    args = parser.parse_args(argv)
    if args.hairs_in:  # no pixel is hair
        lesion.hair_mask = lambda value: np.zeros(value.shape, bool)
    chosen = [c for c in cases(args.derm7pt) if args.part in (c["part"], "all")]
    started = time.perf_counter()
    rows = measured_rows(args.derm7pt, chosen, args.masks, args.measured)
    result = {
        "part": args.part,
        "machine": cpu_name(),
        "proxies": list(PROXIES),
        "hairs_in": args.hairs_in,
        **score(chosen, rows),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, indent=1))
    if args.rows:
        with open(args.rows, "w", newline="") as handle:
            writer = csv.DictWriter(handle, ["id", *next(iter(rows.values()))])
            writer.writeheader()
            writer.writerows({"id": key, **row} for key, row in rows.items())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
