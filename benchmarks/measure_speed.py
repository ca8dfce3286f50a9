"""What `skinseg measure` adds to what `skinseg segment` costs, per image, end to end on the same images.

    python benchmarks/measure_speed.py [--images DIR] [--count 100] [--rounds 3] [--threads 2] [--json FILE]

Both commands run as a user runs them (library calls of the commands, the bundled model, default precision), in
alternating rounds on the same images; the figure is the median per-image time of each and their difference.
Default images: the first --count ISIC 2018 training JPEGs (512 x 512 in ../shared/data). The CPU is named in
the output: the figure differs between machines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from skinseg.data.images import load_mask, load_rgb
from skinseg.inference.config import MeasureConfig, SegmentConfig
from skinseg.inference.measure import measure_paths
from skinseg.inference.model_run import ModelRun
from skinseg.inference.segment import segment_paths
from skinseg.measurement import measure_lesion
from skinseg.runtime.precision import cpu_name

ISIC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isic2018" / "ISIC2018_Task1-2_Training_Input"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=ISIC)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".jpg", ".png"))[: args.count]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "images"
        folder.mkdir()
        for image in images:  # the same files, without the folder's other images
            (folder / image.name).symlink_to(image.resolve())
        segment_s, measure_s = [], []
        for index in range(args.rounds):
            out = Path(scratch) / f"round{index}"
            started = time.perf_counter()
            segment_paths(SegmentConfig(inputs=(folder,), output=out / "masks", run=ModelRun(model=args.model)))
            segment_s.append((time.perf_counter() - started) / len(images))
            started = time.perf_counter()
            result = measure_paths(
                MeasureConfig(inputs=(folder,), csv_file=out / "m.csv", run=ModelRun(model=args.model))
            )
            measure_s.append((time.perf_counter() - started) / len(images))
        lesion_s = _measure_lesion_alone(images, out / "masks")
    report = {
        "machine": cpu_name(),
        "threads": args.threads,
        "images": len(images),
        "image_size": list(load_rgb(images[0]).shape[:2]),
        "rounds": args.rounds,
        "segment_ms_per_image": round(statistics.median(segment_s) * 1000, 1),
        "measure_ms_per_image": round(statistics.median(measure_s) * 1000, 1),
        "measure_lesion_ms_per_image": round(lesion_s * 1000, 1),
        "measured_rows": len(result.rows),
    }
    report["added_ms_per_image"] = round(report["measure_ms_per_image"] - report["segment_ms_per_image"], 1)
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")


def _measure_lesion_alone(images: list[Path], masks: Path) -> float:
    """Seconds per image of measure_lesion alone, on segment's masks, images already decoded."""
    pairs = [(load_rgb(p), load_mask(masks / f"{p.stem}_segmentation.png")) for p in images]
    started = time.perf_counter()
    for image, mask in pairs:
        measure_lesion(image, mask, probability=np.where(mask, 0.9, 0.1), one_lesion=True)
    return (time.perf_counter() - started) / len(pairs)


if __name__ == "__main__":
    main()
