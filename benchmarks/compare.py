"""Side-by-side benchmark: skinseg's improved UNet against MONAI BasicUNet and smp Unet-ResNet34.

    python benchmarks/compare.py [--budget 90] [--size 128] [--device auto] [--models skinseg,monai,smp]

Same data (the shared ISIC 2018 set, prepared by skinseg), same loss (Dice + BCE), same augmentation,
same optimiser and schedule (AdamW, cosine over the time budget), same time budget and device for every
model; no pretrained weights anywhere. Per model it reports parameters, training images/s, inference
images/s and validation Dice (mean per image, threshold 0.5, at the prepared size) after the budget.
Peers that are not installed are reported as such (pip install 'skinseg[bench]'; smp needs torchvision).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import time
from pathlib import Path

import torch

from skinseg.augment import augment_batch
from skinseg.config import TrainConfig
from skinseg.data.dataset import ensure_prepared
from skinseg.device import describe_device, resolve_device
from skinseg.losses import segmentation_loss
from skinseg.model import ImprovedUNet, count_parameters
from skinseg.train import _batch_to_float, _memory_format, _normalise, _to_device, evaluate_arrays, lr_at

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "isic2018"


def build(name: str) -> torch.nn.Module:
    if name == "skinseg":
        return ImprovedUNet()
    if name == "monai":
        from monai.networks.nets import BasicUNet

        return BasicUNet(spatial_dims=2, in_channels=3, out_channels=1)
    if name == "smp":
        import segmentation_models_pytorch as smp

        return smp.Unet("resnet34", encoder_weights=None, in_channels=3, classes=1)
    raise ValueError(name)


def run_one(name: str, data, device: torch.device, budget: float, batch: int, lr: float, infer_batch: int) -> dict:
    torch.manual_seed(0)
    model = build(name).to(device).to(memory_format=_memory_format(device))
    params = count_parameters(model)
    train_x, train_y = _to_device(data, "train", device)
    val_x, val_y = _to_device(data, "val", device)
    mean = torch.tensor(data.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, 3, 1, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    bf16 = device.type == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    config = TrainConfig(data=Path("."), batch_size=batch, loss="dice_bce")
    images = steps = 0
    model.train()
    sync()
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget:
        progress_steps = int(elapsed / budget * 10_000)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(progress_steps, 10_000, lr, 300, "cosine")
        rows = torch.randint(0, len(train_x), (batch,), device=device)
        x, y = augment_batch(*_batch_to_float(train_x[rows], train_y[rows]))
        x = _normalise(x, mean, std).contiguous(memory_format=_memory_format(device))
        with autocast():
            logits = model(x)
        loss = segmentation_loss("dice_bce", logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        images += batch
        steps += 1
        if steps % 20 == 0:
            sync()
    sync()
    train_seconds = time.perf_counter() - start
    loss_sum, dice_sum, acc_sum, count = evaluate_arrays(model, val_x, val_y, mean, std, config, autocast).tolist()

    model.eval()
    x = _normalise(_batch_to_float(val_x[:infer_batch], val_y[:infer_batch])[0], mean, std)
    x = x.contiguous(memory_format=_memory_format(device))
    with torch.inference_mode(), autocast():
        model(x)
        sync()
        repeats, started = 0, time.perf_counter()
        while time.perf_counter() - started < min(20.0, budget / 3) or repeats < 2:
            model(x)
            repeats += 1
        sync()
        infer = repeats * len(x) / (time.perf_counter() - started)
    return {"model": name, "parameters": params, "train_images_per_s": images / train_seconds, "steps": steps,
            "images_seen": images, "inference_images_per_s": infer, "val_dice": dice_sum / count,
            "val_loss": loss_sum / count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--size", type=int, default=None, help="default: 256 on a GPU, 128 on the CPU")
    parser.add_argument("--budget", type=float, default=None, help="training seconds per model (90 GPU, 90 CPU)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", default="skinseg,monai,smp")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    size = args.size or (256 if device.type == "cuda" else 128)
    budget = args.budget or 90.0
    data = ensure_prepared(args.data, size)
    infer_batch = 256 if device.type == "cuda" else 16
    print(f"# {datetime.date.today()}  {describe_device(device)}  {platform.processor() or platform.machine()}  "
          f"torch {torch.__version__}  size {size}  budget {budget:.0f}s  batch {args.batch_size}")
    results = []
    for name in args.models.split(","):
        try:
            build(name)
        except Exception as exc:  # not installed, or (smp) a torchvision that does not match torch
            print(f"{name}: unavailable ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        result = run_one(name, data, device, budget, args.batch_size, args.lr, infer_batch)
        results.append(result)
        print(f"{name:8s} params {result['parameters']:>10,}  train {result['train_images_per_s']:8.1f} img/s  "
              f"infer {result['inference_images_per_s']:8.1f} img/s  val Dice {result['val_dice']:.4f}  "
              f"({result['images_seen']} images seen)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": describe_device(device), "size": size, "budget": budget,
                                         "torch": torch.__version__, "results": results}, indent=1))


if __name__ == "__main__":
    main()
