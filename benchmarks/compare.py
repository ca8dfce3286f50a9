"""Side-by-side benchmark: skinseg's improved UNet against a plain UNet, MONAI BasicUNet and smp Unet-ResNet34.

    python benchmarks/compare.py [--budget 90] [--size 128] [--device auto] [--precision auto]
        [--models skinseg,unet,monai,smp] [--base-filters 16 --depth 5]

Every model trains through skinseg's own engine (`skinseg.training.engine.train_step`, `training_batch`, `validate`):
skinseg's architectures come from its registry, the peers are wrapped in the same Engine. --base-filters and
--depth size skinseg's own models (the peers keep their published sizes).

Same data (the shared ISIC 2018 set, prepared by skinseg), same loss (Dice + BCE), same augmentation,
same optimiser and schedule (AdamW, cosine over the time budget), same time budget and device for every
model; no pretrained weights anywhere. Per model it reports parameters, training images/s, inference
images/s and validation Dice (mean per image, threshold 0.5, at the prepared size) after the budget.
Peers that are not installed are reported as such (pip install 'skinseg-unet[bench]'; smp needs torchvision).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from skinseg.data.dataset import ensure_prepared
from skinseg.models.architectures import ARCHITECTURES
from skinseg.models.config import ModelConfig
from skinseg.models.layers import count_parameters
from skinseg.runtime.device import describe_device, resolve_device
from skinseg.runtime.precision import cpu_features, resolve_precision
from skinseg.training.batches import load_data, to_float, training_batch
from skinseg.training.config import TrainConfig
from skinseg.training.engine import Engine, build_engine, train_step
from skinseg.training.losses import LOSSES
from skinseg.training.optim import create_optimizer, lr_at
from skinseg.training.validation import validate

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "isic2018"
SKINSEG_MODELS = {"skinseg": "improved_unet", "unet": "unet"}  # names here -> skinseg's architecture registry


def build_peer(name: str) -> torch.nn.Module:
    if name == "monai":
        from monai.networks.nets import BasicUNet

        return BasicUNet(spatial_dims=2, in_channels=3, out_channels=1)
    if name == "smp":
        import segmentation_models_pytorch as smp

        return smp.Unet("resnet34", encoder_weights=None, in_channels=3, classes=1)
    raise ValueError(f"unknown model '{name}'; choose from {', '.join([*SKINSEG_MODELS, 'monai', 'smp'])}")


def build_engine_for(name: str, config: TrainConfig, device: torch.device, precision) -> Engine:
    """skinseg's own architectures through its registry and build_engine (sized by config.model); peers wrapped
    in the same Engine."""
    if name in SKINSEG_MODELS:
        architecture = ARCHITECTURES.check(SKINSEG_MODELS[name])
        return build_engine(replace(config, model=replace(config.model, architecture=architecture)), device, precision)
    model = build_peer(name).to(device).to(memory_format=precision.memory_format)
    optimizer = create_optimizer(config.optimizer, model.parameters(), config.lr, config.weight_decay)
    return Engine(model, model, optimizer, LOSSES.get_checked(config.loss), precision)  # type: ignore[arg-type]


def run_one(
    name: str,
    prepared,
    device: torch.device,
    budget: float,
    batch: int,
    lr: float,
    infer_batch: int,
    precision_name: str,
    model_config: ModelConfig | None = None,
) -> dict:
    """Train `name` for `budget` seconds with skinseg's own step (batches drawn at random, cosine over the
    budget), then validate it and time inference."""
    torch.manual_seed(0)
    precision = resolve_precision(precision_name, device, job="train", size=prepared.size)
    data = load_data(prepared, device)
    config = TrainConfig(
        data=Path("."), batch_size=batch, lr=lr, loss="dice_bce", optimizer="adamw", model=model_config or ModelConfig()
    )
    engine = build_engine_for(name, config, device, precision)
    params = count_parameters(engine.model)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    images = steps = 0
    sync()
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget:
        lr_now = lr_at(int(elapsed / budget * 10_000), 10_000, lr, 300, "cosine")
        rows = torch.randint(0, len(data.train), (batch,))
        x, y = training_batch(data, rows, augment=True, precision=precision)
        train_step(engine, x, y, lr_now)
        images += batch
        steps += 1
        if steps % 20 == 0:
            sync()
    sync()
    train_seconds = time.perf_counter() - start
    val_set = data.sets[0].val
    val = validate(engine, val_set, data, threshold=0.5, batch_size=batch * 2)

    model = engine.model.eval()
    x = data.normalise(to_float(*val_set.take(torch.arange(min(infer_batch, len(val_set)))))[0])
    x = x.contiguous(memory_format=precision.memory_format)
    with torch.inference_mode(), precision.autocast():
        model(x)
        sync()
        repeats, started = 0, time.perf_counter()
        while time.perf_counter() - started < min(20.0, budget / 3) or repeats < 2:
            model(x)
            repeats += 1
        sync()
        infer = repeats * len(x) / (time.perf_counter() - started)
    return {
        "model": name,
        "parameters": params,
        "precision": precision.describe(),
        "train_images_per_s": images / train_seconds,
        "steps": steps,
        "images_seen": images,
        "inference_images_per_s": infer,
        "val_dice": val.dice,
        "val_loss": val.loss,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--size", type=int, default=None, help="default: 256 on a GPU, 128 on the CPU")
    parser.add_argument("--budget", type=float, default=None, help="training seconds per model (90 GPU, 90 CPU)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", default="skinseg,unet,monai,smp")
    parser.add_argument("--precision", default="auto", help="auto, fp32 or bf16 (skinseg.runtime.precision)")
    parser.add_argument("--base-filters", type=int, default=ModelConfig.base_filters, help="skinseg's models' width")
    parser.add_argument("--depth", type=int, default=ModelConfig.depth, help="skinseg's models' levels")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    model_config = ModelConfig(base_filters=args.base_filters, depth=args.depth)
    device = resolve_device(args.device)
    size = args.size or (256 if device.type == "cuda" else 128)
    budget = args.budget or 90.0
    data = ensure_prepared(args.data, size)
    size = data.size  # a prepared --data keeps its own size
    infer_batch = 256 if device.type == "cuda" else 16
    print(
        f"# {datetime.date.today()}  {describe_device(device)}  {platform.machine()}  ({cpu_features()})  "
        f"torch {torch.__version__}  size {size}  budget {budget:.0f}s  batch {args.batch_size}"
    )
    results = []
    for name in args.models.split(","):
        try:
            if name not in SKINSEG_MODELS:
                build_peer(name)
        except Exception as exc:  # not installed, or (smp) a torchvision that does not match torch
            print(f"{name}: unavailable ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        result = run_one(
            name, data, device, budget, args.batch_size, args.lr, infer_batch, args.precision, model_config
        )
        results.append(result)
        print(
            f"{name:8s} params {result['parameters']:>10,}  train {result['train_images_per_s']:8.1f} img/s  "
            f"infer {result['inference_images_per_s']:8.1f} img/s  val Dice {result['val_dice']:.4f}  "
            f"({result['images_seen']} images seen)",
            flush=True,
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "device": describe_device(device),
                    "size": size,
                    "budget": budget,
                    "torch": torch.__version__,
                    "results": results,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
