"""Training speed of `skinseg train` itself, and how long it takes to reach a validation Dice.

    python benchmarks/train_speed.py --data prepared/isic2018-256 [--device auto] [--json runs/train-speed.json]
        [--settings b16,b64,b64-compile,b128-compile] [--epochs 3] [--target-dice 0.89 --target-epochs 60]
        [--max-train-images N] [--base-filters 16 --depth 5]

Every figure comes from `skinseg.training.loop.train` runs, so it measures the product's own loop: data on the
device, augmentation there, bf16 and channels-last on CUDA, optional torch.compile. Images/s is taken from
the fastest epoch after the first (which holds compilation and warm-up), training steps only; the target
run's seconds are whole epochs, validation included. The target run trains once with the fastest setting and
reports the cumulative wall-clock seconds at which validation Dice first reached --target-dice.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import tempfile
from pathlib import Path

import torch

from skinseg.data.dataset import open_prepared
from skinseg.models.config import ModelConfig
from skinseg.runtime.device import describe_device, resolve_device
from skinseg.training.config import TrainConfig
from skinseg.training.loop import train

SETTINGS = {
    "b16": {"batch_size": 16},
    "b64": {"batch_size": 64},
    "b64-compile": {"batch_size": 64, "compile": True},
    "b128-compile": {"batch_size": 128, "compile": True},
    "b256-compile": {"batch_size": 256, "compile": True},
}


def images_per_second(history: list[dict], train_images: int) -> dict:
    """Training images/s of the fastest epoch after the first (the validation pass not counted)."""
    later = history[1:] or history
    fastest = min(later, key=lambda row: row["train_seconds"])
    return {
        "train_images_per_s": round(train_images / fastest["train_seconds"], 1),
        "train_seconds": round(fastest["train_seconds"], 2),
        "epoch_seconds": round(fastest["seconds"], 2),
        "first_epoch_seconds": round(history[0]["seconds"], 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a prepared dataset")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--settings", default="b16,b64,b64-compile,b128-compile")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per speed setting")
    parser.add_argument("--max-train-images", type=int, default=0, help="cap for a quick check (0: all)")
    parser.add_argument("--target-dice", type=float, default=0.89)
    parser.add_argument("--target-epochs", type=int, default=0, help="epochs of the target run (0: skip it)")
    parser.add_argument(
        "--target-lr",
        type=float,
        default=None,
        help="peak lr of the target run [default: the recipe's, scaled by batch/16, at most 8e-3]",
    )
    parser.add_argument("--base-filters", type=int, default=ModelConfig.base_filters, help="the model's width")
    parser.add_argument("--depth", type=int, default=ModelConfig.depth, help="the model's levels")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    model = ModelConfig(base_filters=args.base_filters, depth=args.depth)
    data = open_prepared(args.data)
    train_images = len(data.indices("train"))
    if args.max_train_images:
        train_images = min(train_images, args.max_train_images)
    header = {
        "date": str(datetime.date.today()),
        "device": describe_device(device),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "size": data.size,
        "train_images": train_images,
        "val_images": len(data.indices("val")),
    }
    print(json.dumps(header), flush=True)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.settings.split(","):
            config = TrainConfig(
                data=args.data,
                out=Path(scratch) / name,
                epochs=args.epochs,
                device=args.device,
                max_train_images=args.max_train_images,
                model=model,
                **SETTINGS[name],
            )
            result = train(config)
            row = {"setting": name, **SETTINGS[name], **images_per_second(result.history, train_images)}
            results.append(row)
            print(json.dumps(row), flush=True)
        target = None
        if args.target_epochs:
            fastest = max(results, key=lambda row: row["train_images_per_s"])
            batch = SETTINGS[fastest["setting"]]["batch_size"]
            lr = args.target_lr or min(8e-3, TrainConfig.lr * batch / 16)
            config = TrainConfig(
                data=args.data,
                out=Path(scratch) / "target",
                epochs=args.target_epochs,
                device=args.device,
                lr=lr,
                max_train_images=args.max_train_images,
                model=model,
                **SETTINGS[fastest["setting"]],
            )
            history = train(config).history
            elapsed, reached = 0.0, None
            for row in history:
                elapsed += row["seconds"]
                if reached is None and row["val_dice"] >= args.target_dice:
                    reached = {"epoch": row["epoch"], "seconds": round(elapsed, 1)}
            target = {
                "setting": fastest["setting"],
                "lr": lr,
                "epochs": args.target_epochs,
                "target_dice": args.target_dice,
                "reached": reached,
                "seconds_total": round(elapsed, 1),
                "best_val_dice": round(max(r["val_dice"] for r in history), 4),
                "val_dice_by_epoch": [round(r["val_dice"], 4) for r in history],
            }
            print(json.dumps(target), flush=True)
    if args.json:
        args.json.write_text(json.dumps({**header, "speed": results, "target": target}, indent=1))


if __name__ == "__main__":
    main()
