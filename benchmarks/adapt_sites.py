"""`skinseg adapt` on dev sites made from the shared data: adapt on a few labelled images of a site, score the
written model on the site's other images as `segment --model` would use it, beside the starting model.

    python benchmarks/adapt_sites.py --site isic-tight --split val [--images 20] [--eval 150] [--model M]
        [--seeds 0] [--json FILE] [--budget 300]

A site is a split of ISIC 2018 or HAM10000 (prepare's seed-0 split, by lesion_id for HAM10000, so the bundled
model never trained on val or test) with a change of protocol or look:

- `*-tight` / `*-loose`: every truth mask eroded / dilated by 3% of the lesion's equivalent diameter
  (experts who outline tighter or looser than ISIC's);
- `isic-cast`: the images with another dermatoscope's colour (a warm cast and a lower gamma), masks as they are;
- `*-same`: nothing changed (the protocol the model learned: adapting must not lose);
- `ham-isic-only`: HAM10000 as it is, for a starting model trained on ISIC 2018 alone (give it with --model).

The adapt images and the scored images are disjoint draws of the split (seeded). Choose on val; score test once.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from skinseg.adaptation import AdaptConfig, adapt
from skinseg.adaptation.crossval import interval
from skinseg.adaptation.scoring import dice
from skinseg.data.images import decode_rgb, load_mask, save_mask_png
from skinseg.data.prepare import load_manifest
from skinseg.inference import Segmenter
from skinseg.runtime.precision import cpu_name

SHIFT = 0.03  # of the lesion's equivalent diameter
CAST = (1.08, 0.97, 0.85)  # per-channel gain of the colour cast, then gamma CAST_GAMMA
CAST_GAMMA = 0.85
SITES = {  # name: (data set, truth change, image change)
    "isic-tight": ("isic2018", -SHIFT, False),
    "isic-loose": ("isic2018", SHIFT, False),
    "isic-cast": ("isic2018", 0.0, True),
    "isic-same": ("isic2018", 0.0, False),
    "ham-tight": ("ham10000", -SHIFT, False),
    "ham-same": ("ham10000", 0.0, False),
    "ham-isic-only": ("ham10000", 0.0, False),
}


def changed_truth(mask: np.ndarray, shift: float) -> np.ndarray:
    if not shift:
        return mask
    steps = max(1, round(abs(shift) * 2 * np.sqrt(mask.sum() / np.pi)))
    grow = ndimage.binary_dilation if shift > 0 else ndimage.binary_erosion
    changed = grow(mask, structure=ndimage.generate_binary_structure(2, 1), iterations=steps)
    return changed if changed.any() else mask


def changed_image(image: np.ndarray, cast: bool) -> np.ndarray:
    if not cast:
        return image
    scaled = np.clip(image / 255.0 * np.array(CAST), 0, 1) ** CAST_GAMMA
    return (scaled * 255).round().astype(np.uint8)


def site_items(prepared: Path, split: str, seed: int) -> list[dict]:
    manifest = load_manifest(prepared)
    if manifest is None:
        raise SystemExit(f"{prepared}: not a prepared set (run skinseg prepare first)")
    items = [item for item in manifest["items"] if item["split"] == split]
    np.random.default_rng(seed).shuffle(items)
    return items


def write_site(items: list[dict], folder: Path, shift: float, cast: bool) -> None:
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for item in items:
        image, _ = decode_rgb(item["image"])
        Image.fromarray(changed_image(image, cast)).save(folder / "images" / f"{item['id']}.png")
        save_mask_png(
            changed_truth(load_mask(item["mask"]), shift), folder / "masks" / f"{item['id']}_segmentation.png"
        )


def scores(model: Path | None, items: list[dict], shift: float, cast: bool) -> np.ndarray:
    segmenter = Segmenter(model)
    result = []
    for start in range(0, len(items), 8):
        batch = items[start : start + 8]
        images = [changed_image(decode_rgb(item["image"])[0], cast) for item in batch]
        masks = segmenter.masks(images)
        result += [dice(m, changed_truth(load_mask(i["mask"]), shift)) for m, i in zip(masks, batch, strict=True)]
    return np.array(result)


def run_site(args, seed: int) -> dict:
    data_set, shift, cast = SITES[args.site]
    items = site_items(Path(args.prepared) / data_set, args.split, seed)
    adapt_items, eval_items = items[: args.images], items[args.images : args.images + args.eval]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "site"
        write_site(adapt_items, folder, shift, cast)
        started = time.monotonic()
        result = adapt(
            AdaptConfig(
                data=folder, out=Path(tmp) / "adapted.safetensors", model=args.model, time_budget=args.budget, seed=seed
            )
        )
        seconds = time.monotonic() - started
        before = scores(args.model, eval_items, shift, cast)
        after = before if result.chosen == "unchanged" else scores(result.out, eval_items, shift, cast)
    return {
        "site": args.site,
        "split": args.split,
        "seed": seed,
        "images": args.images,
        "scored": len(eval_items),
        "chosen": result.chosen,
        "threshold": result.threshold,
        "boundary_offset": result.boundary_offset,
        "recipe": result.recipe and result.recipe.to_dict(),
        "cross_validation": {e.name: e.to_dict() for e in result.estimates},
        "notes": result.notes,
        "before": round(float(before.mean()), 4),
        "after": round(float(after.mean()), 4),
        "gain": round(float((after - before).mean()), 4),
        "gain_interval": [round(v, 4) for v in interval(after - before)],
        "adapt_seconds": round(seconds, 1),
        "cpu": cpu_name(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", choices=sorted(SITES), required=True)
    parser.add_argument("--split", choices=("train", "val", "test"), default="val")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--eval", type=int, default=150)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--budget", type=float, default=300.0)
    parser.add_argument("--prepared", default="prepared", help="folder holding isic2018/ and ham10000/ (prepare)")
    parser.add_argument("--json", type=Path, default=None, help="append one JSON line per run")
    args = parser.parse_args(argv)
    if args.site == "ham-isic-only" and args.model is None:
        parser.error("--site ham-isic-only needs --model (the ISIC-only model, see the docstring)")
    for seed in args.seeds:
        row = run_site(args, seed)
        print(json.dumps(row), flush=True)
        if args.json is not None:
            with open(args.json, "a") as handle:
                handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
