"""Whether int8 pays for `segment` on this CPU (issue #35): the model quantised to int8 (PyTorch's FX graph mode,
static, the x86 backend's default settings, calibrated on training images) against fp32, for the forward pass's
time and for its masks: the share of pixels on which they agree and the Dice of each against the truth, over a
split that the calibration never saw. The issue's rule: int8 only if its masks agree with fp32's on >= 99.5% of
pixels and the Dice is unchanged to 0.001.

    python benchmarks/int8_quantization.py --data prepared/isic2018 [--split val] [--calibrate 64] [--images N]
                                           [--batch 8] [--repeats 3] [--model M] [--json FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from skinseg.data.images import load_mask, load_rgb
from skinseg.data.sources import split_pairs
from skinseg.evaluation.metrics import image_metrics
from skinseg.inference.segmenter import Segmenter
from skinseg.runtime.precision import cpu_name

AGREEMENT_NEEDED = 0.995  # issue #35's rules for int8
DICE_TOLERANCE = 0.001


def quantised(segmenter: Segmenter, calibration: list[Path], batch: int) -> Segmenter:
    """A copy of `segmenter` whose model is int8, its activations' ranges observed on `calibration`."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    int8 = copy.copy(segmenter)
    size = segmenter.info.input_size
    with warnings.catch_warnings():  # FX mode's deprecation and observer warnings: this is a measurement
        warnings.simplefilter("ignore")
        int8.model = prepare_fx(
            copy.deepcopy(segmenter.model), get_default_qconfig_mapping("x86"), (torch.zeros(1, 3, size, size),)
        )
        for start in range(0, len(calibration), batch):
            inputs = [int8.read(path) for path in calibration[start : start + batch]]
            int8.probabilities_of([i for i, _ in inputs], [s for _, s in inputs])
        int8.model = convert_fx(int8.model)
    return int8


def forward_seconds(model, size: int, batch: int, repeats: int) -> float:
    """The best of `repeats` forward passes of a batch, per image."""
    inputs = torch.randn(batch, 3, size, size)
    best = float("inf")
    with torch.inference_mode():
        model(inputs)
        for _ in range(repeats):
            started = time.perf_counter()
            model(inputs)
            best = min(best, time.perf_counter() - started)
    return best / batch


def compared(fp32: Segmenter, int8: Segmenter, pairs: list, batch: int) -> dict:
    """Pixel agreement of the two's masks, and the mean Dice of each against the truth."""
    same = total = 0
    dice: dict[str, list[float]] = {"fp32": [], "int8": []}
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        images = [load_rgb(pair.image) for pair in chunk]
        truths = [load_mask(pair.mask) > 0 for pair in chunk]
        for a, b, truth in zip(fp32.masks(images), int8.masks(images), truths, strict=True):
            same += int((a == b).sum())
            total += a.size
            dice["fp32"].append(image_metrics(truth, a > 0)["dice"])
            dice["int8"].append(image_metrics(truth, b > 0)["dice"])
    return {
        "agreement": round(same / max(1, total), 5),
        "dice_fp32": round(float(np.mean(dice["fp32"])), 4),
        "dice_int8": round(float(np.mean(dice["int8"])), 4),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a prepared set or a raw folder")
    parser.add_argument("--split", default="val", help="the split compared (the calibration is from `train`)")
    parser.add_argument("--calibrate", type=int, default=64, help="training images that set int8's ranges")
    parser.add_argument("--images", type=int, default=None, help="compare on the split's first N images (all)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None, help="a model file (the bundled model)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    fp32 = Segmenter(args.model, device="cpu", precision="fp32")
    size = fp32.info.input_size
    training, _ = split_pairs(args.data, "train", size)
    pairs, where = split_pairs(args.data, args.split, size)
    int8 = quantised(fp32, [pair.image for pair in training[: args.calibrate]], args.batch)
    seconds = {
        name: forward_seconds(segmenter.model, size, args.batch, args.repeats)
        for name, segmenter in (("fp32", fp32), ("int8", int8))
    }
    quality = compared(fp32, int8, pairs[: args.images], args.batch)
    result = {
        "machine": cpu_name(),
        "torch": torch.__version__,
        "where": where,
        "images": len(pairs[: args.images]),
        "calibration_images": min(args.calibrate, len(training)),
        "input_size": size,
        "batch": args.batch,
        "forward_ms_per_image": {name: round(s * 1000, 1) for name, s in seconds.items()},
        "int8_speedup": round(seconds["fp32"] / seconds["int8"], 2),
        **quality,
        "int8_passes": quality["agreement"] >= AGREEMENT_NEEDED
        and abs(quality["dice_int8"] - quality["dice_fp32"]) <= DICE_TOLERANCE,
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
