"""Prepare benchmark: skinseg prepare against a plain Pillow loop, on the shared ISIC 2018 set.

    python benchmarks/prepare_speed.py [--data ../shared/data/isic2018] [--size 256] [--repeat 3] [--workers 0]
                                       [--over-a-cache]

Prints seconds (best of --repeat) and images/s for (1) a one-core Pillow open+convert+resize loop of images
and masks, (2) the same with JPEG draft decoding, (3) `skinseg prepare` cold: into a new cache folder, all
cores, (4) with --over-a-cache, `skinseg prepare --force` over a cache that is there (its old arrays are
dropped when the new ones replace them), and (5) a warm rerun (cache reused). Before each timed run the disk
is synced and the last run's cache removed, outside the timing, so that no run waits on the writes of the one
before. (1) reads the source files first, so every run finds them in the page cache. The machine should be
quiet: name its CPU beside the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from skinseg.data.config import PrepareConfig
from skinseg.data.layouts import discover_pairs
from skinseg.data.prepare import prepare_dataset


def pillow_loop(pairs, size: int, draft: bool) -> float:
    start = time.perf_counter()
    for pair in pairs:
        with Image.open(pair.image) as image:
            if draft:
                image.draft("RGB", (size, size))
            image.convert("RGB").resize((size, size), Image.BILINEAR)
        with Image.open(pair.mask) as mask:
            mask.convert("L").resize((size, size), Image.BILINEAR)
    return time.perf_counter() - start


def best(repeat: int, run: Callable[[int], float], before: Callable[[int], None] = lambda _: None) -> float:
    """The least seconds of `repeat` runs; `before` (untimed) readies run i."""
    times = []
    for i in range(repeat):
        before(i)
        os.sync()
        times.append(run(i))
    return min(times)


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        return f"{names[0]}, {len(names)} cores" if names else platform.processor()
    except OSError:
        return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/isic2018")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="prepare's decoding processes (0: one per core)")
    parser.add_argument("--over-a-cache", action="store_true", help="also time --force over an existing cache")
    args = parser.parse_args(argv)
    pairs = discover_pairs(args.data).pairs
    n = len(pairs)
    print(f"{n} pairs from {args.data}, size {args.size}, {cpu_name()}")
    rows = []
    rows.append(("Pillow loop, 1 core", best(args.repeat, lambda _: pillow_loop(pairs, args.size, False))))
    rows.append(("Pillow loop + draft, 1 core", best(args.repeat, lambda _: pillow_loop(pairs, args.size, True))))
    with tempfile.TemporaryDirectory() as tmp:

        def config(i: int, force: bool = True) -> PrepareConfig:
            out = Path(tmp) / f"cache{i}"
            return PrepareConfig(data=args.data, out=out, size=args.size, force=force, workers=args.workers)

        def new_folder(i: int) -> None:
            shutil.rmtree(Path(tmp) / f"cache{i - 1}", ignore_errors=True)

        cold = best(args.repeat, lambda i: prepare_dataset(config(i)).seconds, new_folder)
        rows.append(("skinseg prepare (cold, all cores)", cold))
        prepare_dataset(config(args.repeat))
        if args.over_a_cache:
            again = best(args.repeat, lambda _: prepare_dataset(config(args.repeat)).seconds)
            rows.append(("skinseg prepare --force (over a cache)", again))
        warm = config(args.repeat, force=False)
        reused = best(args.repeat, lambda _: prepare_dataset(warm).seconds)
        rows.append(("skinseg prepare (warm, cache reused)", reused))
    print(f"{'what':42s} {'seconds':>8s} {'images/s':>9s}")
    for name, seconds in rows:
        print(f"{name:42s} {seconds:8.2f} {n / seconds:9.0f}")


if __name__ == "__main__":
    main()
