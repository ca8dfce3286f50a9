"""Precision table: training step and inference time of the default model at fp32, bf16, bf16 + channels_last
and bf16 + channels_last + torch.compile, through the product's own engine (build_engine, train_step).

    python benchmarks/precision.py [--device auto] [--sizes 128,256] [--batch 16] [--infer-batch 8]
        [--settings fp32,bf16,bf16-cl,bf16-cl-compile] [--base-filters 16 --depth 5] [--json runs/precision.json]
    python benchmarks/precision.py --agreement prepared/isic128 [--split test]   # bf16 vs fp32 masks

Times are the median of --repeats timed steps after --warmup untimed ones (compiled settings get more warm-up:
compilation happens there). The header names the CPU, its bf16 features and the torch thread count.
--agreement runs the bundled model (or --model) over a split at each image's own resolution with fp32 and
with bf16 and reports the share of mask pixels that agree (threshold and post-processing as `evaluate`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path

import torch

from skinseg.models.config import ModelConfig
from skinseg.runtime.device import describe_device, resolve_device
from skinseg.runtime.precision import cpu_features, resolve_precision
from skinseg.training.config import TrainConfig
from skinseg.training.engine import build_engine, train_step

SETTINGS = {
    "fp32": dict(precision="fp32", channels_last=False, compile=False),
    "fp32-cl": dict(precision="fp32", channels_last=True, compile=False),
    "bf16": dict(precision="bf16", channels_last=False, compile=False),
    "bf16-cl": dict(precision="bf16", channels_last=True, compile=False),
    "bf16-cl-compile": dict(precision="bf16", channels_last=True, compile=True),
    "fp32-compile": dict(precision="fp32", channels_last=False, compile=True),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: torch.device, warmup: int, repeats: int) -> tuple[float, float]:
    """The median of `repeats` timed calls after `warmup` untimed ones, and the first call's seconds (which hold
    torch.compile's compilation and the first-call set-up)."""
    started = time.perf_counter()
    fn()
    _sync(device)
    first = time.perf_counter() - started
    for _ in range(warmup - 1):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times), first


def measure(
    setting: str,
    size: int,
    device: torch.device,
    batch: int,
    infer_batch: int,
    warmup: int,
    repeats: int,
    model: ModelConfig | None = None,
) -> dict:
    options = SETTINGS[setting]
    config = TrainConfig(
        data=Path("."),
        model=model or ModelConfig(),
        batch_size=batch,
        precision=options["precision"],
        channels_last=options["channels_last"],
        compile=options["compile"],
    )
    precision = resolve_precision(config.precision, device, config.channels_last, job="train", size=size)
    torch.manual_seed(0)
    engine = build_engine(config, device, precision)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=precision.memory_format)
    y = (torch.rand(batch, 1, size, size, device=device) > 0.5).float()
    extra = 2 if config.compile else 0
    train_s, first_train_s = _timed(lambda: train_step(engine, x, y, 1e-4), device, warmup + extra, repeats)

    model = engine.forward
    engine.model.eval()
    xi = x[:infer_batch]

    def infer():
        with torch.inference_mode(), precision.autocast():
            model(xi)

    infer_s, first_infer_s = _timed(infer, device, warmup + extra, repeats)
    return {
        "setting": setting,
        "size": size,
        "batch": batch,
        "train_step_s": round(train_s, 4),
        "train_images_per_s": round(batch / train_s, 1),
        "first_train_step_s": round(first_train_s, 2),
        "infer_batch": infer_batch,
        "infer_ms_per_image": round(1000 * infer_s / infer_batch, 2),
        "first_infer_s": round(first_infer_s, 2),
    }


def agreement(data: Path, split: str, model: Path | None, device: str, batch: int) -> dict:
    """Share of mask pixels on which bf16 inference agrees with fp32, over a split."""
    from skinseg.data.images import load_rgb
    from skinseg.data.sources import split_pairs
    from skinseg.inference.segmenter import Segmenter

    fp32 = Segmenter(model, device=device, precision="fp32")
    bf16 = Segmenter(model, device=device, precision="bf16")
    pairs, where = split_pairs(data, split, fp32.info.input_size)
    same = total = 0
    worst = 1.0
    started = time.perf_counter()
    for start in range(0, len(pairs), batch):
        images = [load_rgb(p.image) for p in pairs[start : start + batch]]
        for a, b in zip(fp32.masks(images), bf16.masks(images), strict=False):
            same += int((a == b).sum())
            total += a.size
            worst = min(worst, float((a == b).mean()))
    return {
        "where": where,
        "images": len(pairs),
        "pixels": total,
        "agreement": same / total,
        "worst_image_agreement": worst,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", default="128,256")
    parser.add_argument("--settings", default="fp32,bf16,bf16-cl,bf16-cl-compile")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--infer-batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=None, help="default: 2 on the CPU, 5 on CUDA")
    parser.add_argument("--repeats", type=int, default=None, help="default: 3 on the CPU, 20 on CUDA")
    parser.add_argument("--threads", type=int, default=0, help="torch threads on the CPU (0: torch's default)")
    parser.add_argument("--base-filters", type=int, default=ModelConfig.base_filters, help="the model's width")
    parser.add_argument("--depth", type=int, default=ModelConfig.depth, help="the model's levels")
    parser.add_argument(
        "--agreement",
        type=Path,
        default=None,
        help="a prepared or raw data set: measure bf16 vs fp32 mask agreement on --split instead",
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    header = {
        "date": str(datetime.date.today()),
        "device": describe_device(device),
        "cpu_features": cpu_features(),
        "torch": torch.__version__,
    }
    print(f"# {header['date']}  {header['device']}  ({header['cpu_features']})  torch {header['torch']}", flush=True)
    if args.agreement:
        result = {**header, **agreement(args.agreement, args.split, args.model, args.device, args.infer_batch)}
        print(json.dumps(result), flush=True)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        return
    cuda = device.type == "cuda"
    warmup = args.warmup if args.warmup is not None else (5 if cuda else 2)
    repeats = args.repeats if args.repeats is not None else (20 if cuda else 3)
    model = ModelConfig(base_filters=args.base_filters, depth=args.depth)
    rows = []
    infer = f"inference ms/img (batch {args.infer_batch})"
    print(f"| size | setting | train step (batch {args.batch}) | train img/s | {infer} |")
    print("| --- | --- | --- | --- | --- |", flush=True)
    settings = args.settings.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    # Compiled settings last: their compilation is slow, and a time limit should cut them, not the others.
    plan = [(size, s) for s in settings if not SETTINGS[s]["compile"] for size in sizes]
    plan += [(size, s) for s in settings if SETTINGS[s]["compile"] for size in sizes]
    for size, setting in plan:
        try:
            row = measure(setting, size, device, args.batch, args.infer_batch, warmup, repeats, model)
        except Exception as exc:  # e.g. a compiler missing: report and go on
            row = {"setting": setting, "size": size, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            print(f"| {size} | {setting} | failed: {row['error']} | | |", flush=True)
        else:
            print(
                f"| {size} | {setting} | {row['train_step_s']:.3f} s | {row['train_images_per_s']:.1f} | "
                f"{row['infer_ms_per_image']:.1f} |",
                flush=True,
            )
        rows.append(row)
    if args.json:
        args.json.write_text(json.dumps({**header, "warmup": warmup, "repeats": repeats, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
