"""Link the images and masks of one split of a prepared dataset into two folders.

    python benchmarks/link_split.py prepared/isic2018-256 test runs/test-split

gives runs/test-split/images/ and runs/test-split/masks/ (symbolic links to the source files), so that
`skinseg segment runs/test-split/images -o PRED` and `isic-challenge-scoring segmentation
runs/test-split/masks PRED` can score the split the official way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from skinseg.data.prepare import load_manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prepared", type=Path, help="a prepared dataset")
    parser.add_argument("split", help="train, val or test")
    parser.add_argument("out", type=Path, help="where images/ and masks/ are made")
    args = parser.parse_args(argv)
    prepared, split, out = args.prepared, args.split, args.out
    manifest = load_manifest(prepared)
    if manifest is None:
        sys.exit(f"{prepared}: not a prepared dataset")
    for kind in ("images", "masks"):
        (out / kind).mkdir(parents=True, exist_ok=True)
    count = 0
    for item in manifest["items"]:
        if item["split"] != split:
            continue
        for kind, key in (("images", "image"), ("masks", "mask")):
            source = Path(item[key]).resolve()
            link = out / kind / source.name
            if not link.exists():
                link.symlink_to(source)
        count += 1
    print(f"linked {count} {split} pairs into {out}/images and {out}/masks")


if __name__ == "__main__":
    main()
