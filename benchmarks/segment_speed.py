"""The figures of issue #35's table for `skinseg segment`, for one or more source trees on the same machine.

    python benchmarks/segment_speed.py [--images DIR] [--count 100] [--floor-count 200] [--rounds 3]
                                       [--tree SRC ...] [--model PATH] [--json FILE]

For each tree (a `src` folder; default: this checkout's), in alternating rounds so that both see the same load:
- `skinseg segment` of --count JPEGs, end to end (a fresh process, the bundled model, defaults): images/s;
- the same on --floor-count JPEGs, against the bare forward pass of the same network at its input size, batch 8,
  the best of fp32 and (where the CPU computes it natively) bf16: the ratio of the two;
- one image, cold (`skinseg segment one.jpg -o m.png`): seconds.
The median of the rounds is printed, the CPU named, and the masks of every tree compared with the first's byte
for byte. Default images: the first ISIC 2018 training JPEGs (512 x 512) in ../shared/data.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from skinseg.models.weights import load_model
from skinseg.runtime.precision import cpu_bf16_kind, cpu_name

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = ROOT.parent / "shared/data/isic2018/ISIC2018_Task1-2_Training_Input"


def run_segment(tree: Path, args: list[str]) -> float:
    """Seconds of `skinseg segment ARGS` in a fresh process that imports skinseg from `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "skinseg", "segment", *args], check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def forward_floor(model_path: Path | None, count: int, repeats: int = 5) -> tuple[float, str]:
    """Seconds for `count` images through the network alone (batch 8), the best of fp32 and native bf16."""
    model, info = load_model(model_path, "cpu")
    batch = torch.randn(8, 3, info.input_size, info.input_size)
    best, name = float("inf"), ""
    settings = [("fp32", torch.float32)] + ([("bf16", torch.bfloat16)] if cpu_bf16_kind() != "emulated" else [])
    for label, dtype in settings:
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            model(batch)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                model(batch)
                times.append(time.perf_counter() - start)
        seconds = min(times) * count / 8
        best, name = (seconds, label) if seconds < best else (best, name)
    return best, name


def folder_of(images: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for image in images:
        (folder / image.name).symlink_to(image)
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--floor-count", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", type=Path, action="append", help="a src folder (repeat) [default: this one]")
    parser.add_argument("--model", type=Path, help="[default: the bundled model]")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    model = ["--model", str(args.model)] if args.model else []
    trees = args.tree or [ROOT / "src"]
    images = sorted(args.images.glob("*.jpg"))[: max(args.count, args.floor_count)]
    floor, floor_setting = forward_floor(args.model, args.floor_count)
    times: dict[str, dict[str, list[float]]] = {str(t): {"many": [], "floor_run": [], "one": []} for t in trees}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        many = folder_of(images[: args.count], work / "many")
        floor_images = folder_of(images[: args.floor_count], work / "floor")
        for round_index in range(args.rounds):
            for index, tree in enumerate(trees):
                out = work / f"out{index}-{round_index}"
                mine = times[str(tree)]
                mine["many"].append(run_segment(tree, [str(many), "-o", str(out / "many"), *model]))
                mine["floor_run"].append(run_segment(tree, [str(floor_images), "-o", str(out / "floor"), *model]))
                mine["one"].append(run_segment(tree, [str(images[0]), "-o", str(out / "one.png"), *model]))
        differing = {
            str(tree): sum(
                not filecmp.cmp(work / "out0-0/many" / name, work / f"out{index}-0/many" / name, shallow=False)
                for name in os.listdir(work / "out0-0/many")
            )
            for index, tree in enumerate(trees)
        }
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores, bf16: {cpu_bf16_kind()}), torch {torch.__version__}")
    print(f"forward floor: {floor:.2f} s for {args.floor_count} images ({floor_setting}, batch 8)")
    rows = []
    for tree, mine in times.items():
        many_s, floor_s, one_s = (statistics.median(mine[k]) for k in ("many", "floor_run", "one"))
        row = {
            "tree": tree,
            "images_per_s": args.count / many_s,
            "ratio_to_floor": floor_s / floor,
            "one_cold_s": one_s,
            "masks_differing_from_first_tree": differing[tree],
        }
        rows.append(row)
        print(
            f"{tree}: {row['images_per_s']:.1f} img/s on {args.count}; {floor_s:.2f} s on {args.floor_count} "
            f"= {row['ratio_to_floor']:.2f}x the floor; one cold image {one_s:.2f} s; "
            f"masks differing from the first tree's: {differing[tree]}"
        )
    if args.json:
        report = {"cpu": cpu_name(), "images": args.count, "floor_images": args.floor_count, "floor_s": floor}
        args.json.write_text(json.dumps({**report, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
