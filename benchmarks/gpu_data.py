"""A copy of the shared ISIC 2018 data small enough to travel to a lent GPU machine (see gpu_check.sh).

    python benchmarks/gpu_data.py [--data ../shared/data/isic2018] [--out .gpu-data/isic2018-256]
        [--size 256] [--quality 85] [--workers 2] [--limit N]

The device tool sends the repository's working tree (64 MiB at most) and nothing beside it, so the shared
data (2,594 pairs at 512 x 512, about 71 MB) cannot be read there. This writes every pair at 256 x 256 in the
official folder and file names, so `skinseg prepare` detects the ISIC 2018 layout as usual:

- images as JPEG (quality 85 by default): decoded exactly as `skinseg prepare --size 256` decodes the
  originals (JPEG draft mode at 256 px, bilinear otherwise), then re-encoded; the only difference from a
  cache prepared from the originals is this second JPEG encoding (about 40 dB PSNR at quality 85);
- masks as 1-bit PNG, resized exactly as `skinseg prepare` resizes them (area average, lesion where at least
  half is lesion), so the prepared masks are bit-identical to those prepared from the originals.

Measured on the development machine (2 cores, 2026-11-28): 2,594 pairs in 24.9 MiB (images 23.6 MiB,
masks 1.3 MiB), written in 27 s; `skinseg prepare --size 256` of the copy gives the same split and identical
masks as of the originals, images at 39.8 dB PSNR. The output folder is ignored by .gitignore
(`/.gpu-data/`); name `.gpu-data` in the device tool's `carry`. Run it in the checkout that the session
calling the device tool was started in: only that one travels. The ISIC 2018 data are CC BY-NC 4.0; the
copy keeps the source's README beside a note.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import time
from pathlib import Path

from PIL import Image

from skinseg.data.images import binarise, decode_rgb, read_mask_grey, resize_mask

REPO = Path(__file__).resolve().parents[1]
IMAGES = "ISIC2018_Task1-2_Training_Input"
MASKS = "ISIC2018_Task1_Training_GroundTruth"


def _default_data() -> Path:
    """../shared/data/isic2018 beside this checkout, or beside the main checkout when run from a worktree."""
    for base in (REPO.parent, Path("/work")):
        if (base / "shared" / "data" / "isic2018").is_dir():
            return base / "shared" / "data" / "isic2018"
    return REPO.parent / "shared" / "data" / "isic2018"


def _convert(job: tuple[Path, Path, Path, Path, int, int]) -> tuple[str, int, bool]:
    """One pair: (id, bytes written, mask still non-empty)."""
    image_in, mask_in, image_out, mask_out, size, quality = job
    rgb, _ = decode_rgb(image_in, size)
    Image.fromarray(rgb).save(image_out, format="JPEG", quality=quality, optimize=True)
    mask = resize_mask(binarise(read_mask_grey(mask_in)), size)
    Image.fromarray(mask).save(mask_out, format="PNG", optimize=True)  # bool -> mode "1": 1 bit per pixel
    return image_in.stem, image_out.stat().st_size + mask_out.stat().st_size, bool(mask.any())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=_default_data(), help="the shared ISIC 2018 folder")
    parser.add_argument("--out", type=Path, default=REPO / ".gpu-data" / "isic2018-256")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality of the images")
    parser.add_argument("--workers", type=int, default=2, help="processes (0: convert in this process)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N pairs (0: all)")
    args = parser.parse_args(argv)

    images = sorted((args.data / IMAGES).glob("*.jpg"))
    if args.limit:
        images = images[: args.limit]
    if not images:
        sys.exit(f"no images in {args.data / IMAGES}")
    (args.out / IMAGES).mkdir(parents=True, exist_ok=True)
    (args.out / MASKS).mkdir(parents=True, exist_ok=True)
    jobs = []
    for image in images:
        mask = args.data / MASKS / f"{image.stem}_segmentation.png"
        if not mask.is_file():
            print(f"skipped {image.name}: no mask", file=sys.stderr)
            continue
        jobs.append(
            (
                image,
                mask,
                args.out / IMAGES / f"{image.stem}.jpg",
                args.out / MASKS / f"{image.stem}_segmentation.png",
                args.size,
                args.quality,
            )
        )

    started = time.perf_counter()
    if args.workers:
        with multiprocessing.Pool(args.workers) as pool:
            results = pool.map(_convert, jobs, chunksize=32)
    else:
        results = [_convert(job) for job in jobs]
    seconds = time.perf_counter() - started

    readme = args.data / "README.md"
    if readme.is_file():
        shutil.copy(readme, args.out / "README.md")
    (args.out / "COPY.txt").write_text(
        f"Made by benchmarks/gpu_data.py from {args.data}: every pair at {args.size} x {args.size}, images "
        f"re-encoded as JPEG quality {args.quality}, masks as 1-bit PNG resized as `skinseg prepare` does. "
        "CC BY-NC 4.0, as README.md says.\n"
    )
    empty = [name for name, _, nonempty in results if not nonempty]
    total = sum(path.stat().st_size for path in args.out.rglob("*") if path.is_file())
    image_bytes = sum(path.stat().st_size for path in (args.out / IMAGES).iterdir())
    print(
        f"{len(results)} pairs -> {args.out}: {total / 2**20:.1f} MiB in all (images {image_bytes / 2**20:.1f} MiB, "
        f"masks {(total - image_bytes) / 2**20:.1f} MiB), {seconds:.1f} s "
        + (f"with {args.workers} processes" if args.workers else "in one process")
    )
    if empty:
        print(f"warning: {len(empty)} mask(s) empty at {args.size} px (prepare will skip them): {empty[:5]}")
    print(
        "To use it on the device machine: keep `/.gpu-data/` ignored (.gitignore has it; in a checkout without "
        'that line add it to .git/info/exclude) and name ".gpu-data" in the device tool\'s carry.'
    )


if __name__ == "__main__":
    main()
