"""What `skinseg measure` costs per image with given masks, for one or more source trees on the same machine
(issue #34's budget: within 1.5 times the code before it).

    python benchmarks/measure_lesion_speed.py [--images DIR --masks DIR] [--count 100] [--rounds 3] [--tree SRC ...]
                                              [--json FILE]

For each tree (a `src` folder, e.g. from `git archive COMMIT src | tar -x -C DIR`; default: this checkout's), in
alternating rounds so that all see the same load:
- `measure_lesion` alone on --count ISIC 2018 images with their expert masks, decoded first: ms per image;
- `skinseg measure IMAGES --masks MASKS --csv FILE` on the same images end to end, less a one-image run (the
  start-up): ms per image.
The median of the rounds is printed, with the CPU named. Images: the first --count JPEGs of --images, each with
`<id>_segmentation.png` in --masks; by default the ISIC 2018 training JPEGs (512 x 512) in ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skinseg.runtime.precision import cpu_name

ROOT = Path(__file__).resolve().parents[1]
ISIC = ROOT.parent / "shared/data/isic2018"
IMAGES, MASKS = ISIC / "ISIC2018_Task1-2_Training_Input", ISIC / "ISIC2018_Task1_Training_GroundTruth"
ALONE = """
import sys, time
from pathlib import Path
from skinseg.data.images import load_mask, load_rgb
from skinseg.measurement import measure_lesion
folder = Path(sys.argv[1])
images = sorted(folder.glob("*.jpg"))
pairs = [(load_rgb(p), load_mask(folder / f"{p.stem}_segmentation.png") > 0) for p in images]
measure_lesion(*pairs[0])
start = time.perf_counter()
for image, mask in pairs:
    measure_lesion(image, mask)
print((time.perf_counter() - start) * 1000 / len(pairs))
"""


def in_tree(tree: Path, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, check=True)


def measure_command(tree: Path, images: Path, out: Path) -> float:
    """Seconds of `skinseg measure` of `images` (masks beside them) in a fresh process importing `tree`."""
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    in_tree(tree, ["-m", "skinseg", "measure", str(images), "--masks", str(images), "--csv", str(out)])
    return time.perf_counter() - start


def one_round(tree: Path, folder: Path, single: Path, work: Path) -> dict[str, float]:
    alone = float(in_tree(tree, ["-c", ALONE, str(folder)]).stdout.split()[-1])
    batch = measure_command(tree, folder, work / "all.csv")
    start_up = measure_command(tree, single, work / "one.csv")
    count = len(list(folder.glob("*.jpg")))
    return {"measure_lesion_ms": alone, "measure_command_ms": (batch - start_up) * 1000 / (count - 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=IMAGES)
    parser.add_argument("--masks", type=Path, default=MASKS)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", type=Path, action="append", default=None, help="a src folder (repeatable)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.count < 2:
        parser.error("--count must be at least 2 (one image is the start-up's run)")
    trees = args.tree or [ROOT / "src"]
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        folder, single = work / "images", work / "single"
        folder.mkdir()
        single.mkdir()
        chosen = sorted(args.images.glob("*.jpg"))[: args.count]
        for place, images in ((folder, chosen), (single, chosen[:1])):
            for image in images:
                (place / image.name).symlink_to(image)
                (place / f"{image.stem}_segmentation.png").symlink_to(args.masks / f"{image.stem}_segmentation.png")
        rounds: dict[str, list[dict[str, float]]] = {str(tree): [] for tree in trees}
        for _ in range(args.rounds):
            for tree in trees:
                rounds[str(tree)].append(one_round(tree, folder, single, work))
    result = {
        "machine": cpu_name(),
        "images": args.count,
        "rounds": args.rounds,
        "trees": {
            tree: {key: round(statistics.median(r[key] for r in runs), 1) for key in runs[0]}
            for tree, runs in rounds.items()
        },
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
