"""Reading a prepared cache back: arrays (memory-mapped), manifest and split indices."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skinseg.data.cache import MARKER, load_manifest
from skinseg.data.config import PrepareConfig
from skinseg.data.prepare import prepare_dataset
from skinseg.errors import SkinsegError
from skinseg.fileio import NAMES_AS_THEY_ARE, cache_root


@dataclass
class PreparedData:
    root: Path
    manifest: dict
    images: np.ndarray  # (N, S, S, 3) uint8, memory-mapped
    masks: np.ndarray  # (N, S, S) uint8 0/1, memory-mapped

    @property
    def size(self) -> int:
        return int(self.manifest["size"])

    @property
    def mean(self) -> tuple[float, float, float]:
        return tuple(self.manifest["normalisation"]["mean"])

    @property
    def std(self) -> tuple[float, float, float]:
        return tuple(self.manifest["normalisation"]["std"])

    @property
    def fingerprint(self) -> str:
        """What the cache holds, however its source folder was spelled: its size, and each item's id, split,
        original size and the hashes of its image and mask (in caches of older versions, of its image); the
        normalisation computed from its pixels."""
        keys = ("id", "split", "original_size", "sha256", "mask_sha256")
        items = [[item.get(key) for key in keys] for item in self.manifest["items"]]
        held = [self.size, items, self.manifest.get("normalisation")]
        return hashlib.sha256(json.dumps(held).encode("utf-8", NAMES_AS_THEY_ARE)).hexdigest()

    def indices(self, split: str) -> np.ndarray:
        if split == "all":
            return np.arange(len(self.manifest["items"]))
        return np.array([i for i, item in enumerate(self.manifest["items"]) if item["split"] == split], dtype=int)


def set_name(root: str | Path, manifest: dict | None) -> str:
    """A data set's short name: its raw folder's (a prepared folder's manifest knows where it was made from)."""
    source = Path(manifest["source"]) if manifest and manifest.get("source") else Path(root)
    return source.name.removesuffix(".zip") or "data"


def open_prepared(root: str | Path, manifest: dict | None = None) -> PreparedData:
    """A prepared cache's arrays (memory-mapped) and its manifest (read here unless given)."""
    root = Path(root)
    manifest = manifest or load_manifest(root)
    if manifest is None:
        if any(root.glob(".images.*.tmp.npy")) or (root / MARKER).exists():
            raise SkinsegError(
                "a `skinseg prepare` into this folder did not finish (no manifest.json, its temporary files are"
                " there): run the same prepare again",
                root,
            )
        raise SkinsegError("not a prepared dataset (no complete manifest.json); run `skinseg prepare` first", root)
    try:
        images = np.load(root / "images.npy", mmap_mode="r")
        masks = np.load(root / "masks.npy", mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise SkinsegError(f"prepared arrays are missing or damaged ({exc})", root) from None
    count, size = manifest["count"], manifest["size"]
    if images.shape != (count, size, size, 3) or masks.shape != (count, size, size):
        raise SkinsegError("prepared arrays do not match the manifest; run `skinseg prepare --force`", root)
    return PreparedData(root, manifest, images, masks)


def default_cache_dir(data: Path, size: int, split_seed: int = 0) -> Path:
    """Where a raw folder is prepared on the fly: one folder per (folder, size, split seed)."""
    key = hashlib.sha256(f"{data.resolve()}|{size}|{split_seed}".encode("utf-8", NAMES_AS_THEY_ARE)).hexdigest()[:16]
    return cache_root() / "prepared" / f"{data.resolve().name}-{size}-{key}"


def ensure_prepared(data: str | Path, size: int = 256, split_seed: int = 0) -> PreparedData:
    """A prepared folder as it is, or a raw folder prepared on the fly into the user cache (reused while the
    folder is unchanged)."""
    data = Path(data)
    if (manifest := load_manifest(data)) is not None:
        return open_prepared(data, manifest)
    out = default_cache_dir(data, size, split_seed)
    # the folder resolved: its cache is known as the same however the folder is spelled (prepare's fingerprint
    # holds the paths of the files)
    result = prepare_dataset(PrepareConfig(data=data.resolve(), out=out, size=size, seed=split_seed), wait=True)
    return open_prepared(out, result.manifest)


def data_set_name(data: Path) -> str:
    """A data set's short name, as training names it: its raw folder's."""
    return set_name(data, load_manifest(data))
