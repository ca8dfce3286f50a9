"""The source image/mask files of a split: what `evaluate` scores at each image's own resolution."""

from __future__ import annotations

import os
from pathlib import Path

from skinseg.data.dataset import ensure_prepared
from skinseg.data.layouts import Pair, discover_pairs
from skinseg.data.prepare import load_manifest
from skinseg.errors import SkinsegError
from skinseg.fileio import file_sha256

SPLIT_CHOICES = ("train", "val", "test", "all")


def default_split(manifest: dict | None) -> str:
    """The split scored when none is named: a prepared set's (one with a manifest) test split, a raw folder
    whole."""
    return "test" if manifest is not None else "all"


def split_pairs(data: Path, split: str | None, size: int = 256, split_seed: int = 0) -> tuple[list[Pair], str]:
    """The image/mask pairs of one split (None: default_split) and a description of them. A raw folder is split
    as `train` splits it (prepared on the fly into the cache at `size`, or reused from there); `all` takes every
    pair, and a raw folder's are found without any cache."""
    data = Path(data)
    manifest, root = load_manifest(data), data
    split = split or default_split(manifest)
    where = f"{split} split of {data}"
    if manifest is None:
        if split == "all":
            found = discover_pairs(data)
            left = ""
            if found.problems:
                (first, reason), count = found.problems[0], len(found.problems)
                left = f"; {count} files left out, first {first}: {reason}"
            return found.pairs, f"whole of {data} ({len(found.pairs)} pairs{left})"
        prepared = ensure_prepared(data, size, split_seed)
        manifest, root, where = (
            prepared.manifest,
            prepared.root,
            f"{split} split of {data} (split seed {split_seed}, prepared in {prepared.root})",
        )
    items = [item for item in manifest["items"] if split == "all" or item["split"] == split]
    if not items:
        raise SkinsegError(f"the prepared dataset has no '{split}' images", data)
    bases = _relative_bases(manifest, root)
    pairs = [Pair(item["id"], _source(item["image"], bases), _source(item["mask"], bases)) for item in items]
    missing = [p.image for p in pairs if not p.image.is_file()] + [p.mask for p in pairs if not p.mask.is_file()]
    if missing:
        older = " (its manifest, from an older skinseg, stores them relative to where prepare ran: run from there)"
        relative = any(not Path(item["image"]).is_absolute() for item in items)
        raise SkinsegError(
            f"{len(missing)} source files of the prepared dataset are gone (first: {missing[0]})"
            + (older if relative else ""),
            data,
        )
    for pair, item in zip(pairs, items, strict=True):  # only the split that is read: a cheap check
        if item.get("sha256") and file_sha256(pair.image) != item["sha256"]:
            raise SkinsegError(
                f"source image changed since the prepared set {data} was made: its cache is stale; "
                "re-run `skinseg prepare`",
                pair.image,
            )
    return pairs, where


def _relative_bases(manifest: dict, root: Path) -> list[tuple[Path, Path | None]]:
    """Where an older manifest's relative source paths may start: the folder prepare ran in is an ancestor of
    the recorded (absolute) source folder, or of the cache folder for unpacked zips; then the current folder.
    Each base comes with the folder its paths must stay in."""
    bases: list[tuple[Path, Path | None]] = []
    for inside in (Path(manifest["source"]) if manifest.get("source") else None, Path(root).resolve()):
        if inside is not None and inside.is_absolute():
            bases += [(base, inside) for base in (inside, *inside.parents)]
    return [*bases, (Path.cwd(), None)]


def _source(stored: str, bases: list[tuple[Path, Path | None]]) -> Path:
    path = Path(stored)
    if path.is_absolute():
        return path
    for base, inside in bases:
        candidate = Path(os.path.normpath(base / path))
        if (inside is None or candidate.is_relative_to(inside)) and candidate.is_file():
            return candidate
    return path
