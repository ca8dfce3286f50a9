"""Which probability threshold, with and without post-processing: ISIC metrics on one split for each.

    python benchmarks/threshold_sweep.py --data prepared/isic2018-256 [--model M] [--split val]
        [--thresholds 0.3,0.4,0.5,0.6,0.7] [--json runs/threshold-sweep.json]

The model's probability maps are computed once per image (at the image's own resolution, as `skinseg
evaluate` does), then thresholded at each value. Choose on the validation split, never the test split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from skinseg.data.images import load_mask, load_rgb
from skinseg.data.sources import split_pairs
from skinseg.evaluation.metrics import image_metrics, summarise
from skinseg.inference.segmenter import Segmenter


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--split", default="val")
    parser.add_argument("--thresholds", default="0.3,0.4,0.5,0.6,0.7")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    pairs, where = split_pairs(args.data, args.split)
    segmenter = Segmenter(args.model, device=args.device)
    probabilities, truths = [], []
    for start in range(0, len(pairs), 16):
        chunk = pairs[start : start + 16]
        probabilities += [p.astype(np.float16) for p in segmenter.probabilities([load_rgb(p.image) for p in chunk])]
        truths += [load_mask(p.mask) for p in chunk]
    rows = []
    for threshold in (float(t) for t in args.thresholds.split(",")):
        for postprocess in (False, True):
            segmenter.threshold, segmenter.postprocess = threshold, postprocess
            masks = segmenter.masks_from(probabilities)
            summary = summarise([image_metrics(t, m) for t, m in zip(truths, masks, strict=False)])
            row = {
                "threshold": threshold,
                "postprocess": postprocess,
                **{name: round(summary[name]["mean"], 4) for name in ("dice", "jaccard", "threshold_jaccard")},
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    best = max(rows, key=lambda row: row["dice"])
    print(
        f"best on the {where}: threshold {best['threshold']}, post-processing {best['postprocess']}: "
        f"Dice {best['dice']:.4f}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"data": str(args.data), "split": args.split, "model": str(args.model or "bundled"), "rows": rows},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
