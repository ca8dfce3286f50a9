"""Link the images and masks of one split of a prepared dataset into two folders.

    python benchmarks/link_split.py prepared/isic2018-256 test runs/test-split

gives runs/test-split/images/ and runs/test-split/masks/ (symbolic links to the source files), so that
`skinseg segment runs/test-split/images -o PRED` and `isic-challenge-scoring segmentation
runs/test-split/masks PRED` can score the split the official way.
"""

from __future__ import annotations

import sys
from pathlib import Path

from skinseg.data.prepare import load_manifest


def main() -> None:
    prepared, split, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
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
