"""Prepare benchmark: skinseg prepare against a plain Pillow loop, on the shared ISIC 2018 set.

    python benchmarks/prepare_speed.py [--data ../shared/data/isic2018] [--size 256] [--repeat 3]

Prints images/s for (1) a one-core Pillow open+convert+resize loop, (2) the same with JPEG draft
decoding, (3) `skinseg prepare` (all cores, cold: --force), and (4) a warm rerun (cache reused).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/isic2018")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    pairs = discover_pairs(args.data).pairs
    n = len(pairs)
    machine = platform.processor() or platform.machine()
    print(f"{n} pairs from {args.data}, size {args.size}, {os.cpu_count()} cores, {machine}")
    rows = []
    rows.append(("Pillow loop, 1 core", min(pillow_loop(pairs, args.size, False) for _ in range(args.repeat))))
    rows.append(("Pillow loop + draft, 1 core", min(pillow_loop(pairs, args.size, True) for _ in range(args.repeat))))
    with tempfile.TemporaryDirectory() as tmp:
        config = PrepareConfig(data=args.data, out=Path(tmp) / "cache", size=args.size, force=True)
        cold = [prepare_dataset(config).seconds for _ in range(args.repeat)]
        rows.append(("skinseg prepare (cold, all cores)", min(cold)))
        warm = PrepareConfig(data=args.data, out=Path(tmp) / "cache", size=args.size)
        rows.append(
            ("skinseg prepare (warm, cache reused)", min(prepare_dataset(warm).seconds for _ in range(args.repeat)))
        )
    print(f"{'what':40s} {'seconds':>8s} {'images/s':>9s}")
    for name, seconds in rows:
        print(f"{name:40s} {seconds:8.2f} {n / seconds:9.0f}")


if __name__ == "__main__":
    main()
