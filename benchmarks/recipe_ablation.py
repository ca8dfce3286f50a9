"""Recipe ablations: train the default recipe and one-change variants with `skinseg.training.loop.train`, same data,
same epochs, same seed; report the best and final validation Dice of each.

    python benchmarks/recipe_ablation.py --data prepared/isic64 --epochs 8 [--variants default,lr1e-3,...]
        [--threads 1] [--out runs/ablation] [--max-train-images N] [--base-filters 16 --depth 5]

Each variant writes its own run folder under --out; results are appended to --out/results.jsonl as each
variant finishes (a stopped sweep keeps what it measured) and printed as a Markdown table at the end.
Validation Dice here is the training loop's: mean per image, at the prepared size, threshold 0.5.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from skinseg.runtime.device import describe_device, resolve_device
from skinseg.runtime.precision import cpu_name
from skinseg.training.config import PRESETS, train_config
from skinseg.training.loop import train

VARIANTS: dict[str, dict] = {
    "default": {},
    "lr1e-3": {"lr": 1e-3},
    "lr4e-3": {"lr": 4e-3},
    "loss-dice": {"loss": "dice"},
    "loss-bce": {"loss": "bce"},
    "no-augment": {"augment": False},
    "batch32": {"batch_size": 32},
    "batch8": {"batch_size": 8},
    "no-deep-supervision": {"segmentation_levels": 1},
    "dropout0": {"dropout": 0.0},
    "seed-recipe": {k: v for k, v in PRESETS["seed"].items() if k != "epochs"},
    "plain-unet": {"architecture": "unet"},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a prepared dataset")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--max-train-images", type=int, default=0, help="cap for a quick check (0: all)")
    parser.add_argument("--base-filters", type=int, default=None, help="the model's width [default: the recipe's]")
    parser.add_argument("--depth", type=int, default=None, help="the model's levels [default: the recipe's]")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    rows = []
    for name in args.variants.split(","):
        config = train_config(
            args.data,
            out=args.out / name,
            epochs=args.epochs,
            device=args.device,
            max_train_images=args.max_train_images,
            base_filters=args.base_filters,
            depth=args.depth,
            **VARIANTS[name],
        )
        started = time.perf_counter()
        result = train(config)
        row = {
            "variant": name,
            "change": VARIANTS[name],
            "epochs": args.epochs,
            "data": str(args.data),
            "best_val_dice": round(result.best_dice, 4),  # selected on validation Dice: a prepared set has a val split
            "best_epoch": result.best_epoch,
            "final_val_dice": round(result.history[-1]["val_dice"], 4),
            "minutes": round((time.perf_counter() - started) / 60, 1),
            "device": describe_device(resolve_device(args.device)),
            "threads": torch.get_num_threads(),
            "machine": cpu_name(),
        }
        rows.append(row)
        with results.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    print("\n| variant | change | best val Dice (epoch) | final val Dice | minutes |\n|---|---|---|---|---|")
    for row in rows:
        change = ", ".join(f"{k}={v}" for k, v in row["change"].items()) or "-"
        print(
            f"| {row['variant']} | {change} | {row['best_val_dice']:.4f} ({row['best_epoch']}) | "
            f"{row['final_val_dice']:.4f} | {row['minutes']} |"
        )


if __name__ == "__main__":
    main()
