"""Make the bundled model from a run: its best weights as fp16, with the facts a user needs in the metadata.

    python scripts/bundle_model.py runs/NAME/best.safetensors [--test-json EVAL.json]

EVAL.json is `skinseg evaluate --json` of the test split: of one data set, or of several (`"sets"`), whose
figures are then stored per set.

writes src/skinseg/assets/skinseg-isic2018.safetensors.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from skinseg.models.weights import bundled_model_path, load_model, save_model

DATA_NAMES = {
    "isic2018": "ISIC 2018 Task 1 training set (2,594 pairs, resized to 512x512), seed-0 hash split 60/20/20",
    "ham10000": "HAM10000 with the Tschandl lesion masks (9,539 pairs at 256x256), split 60/20/20 by lesion_id",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("weights", type=Path)
    parser.add_argument("--test-json", type=Path, default=None, help="skinseg evaluate --json of the test split")
    args = parser.parse_args()
    model, info = load_model(args.weights)
    training = dict(info.training)
    names = [s["name"] for s in training.get("data_sets", [])] or ["isic2018"]
    training.update(
        {
            "data_name": " + ".join(DATA_NAMES.get(name, name) for name in names),
            "license": "trained on CC BY-NC 4.0 data: non-commercial research use only, not for diagnosis",
            "run": str(args.weights.parent.name),
        }
    )
    training.pop("test_macro_average", None)  # what an earlier bundling stored
    if args.test_json:
        report = json.loads(args.test_json.read_text())
        training["test"] = {
            r["name"]: {"images": r["count"], **{k: round(v, 4) for k, v in r["macro_average"].items()}}
            for r in report.get("sets", [report])
        }
    target = bundled_model_path()
    save_model(model, target, dataclasses.replace(info, training=training), dtype=torch.float16)
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
