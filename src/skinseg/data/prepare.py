"""`skinseg prepare`: pair, check, resize, cache and split a dataset.

The cache is a folder with `images.npy` (N, S, S, 3) and `masks.npy` (N, S, S) uint8 arrays that can be
memory-mapped, and `manifest.json`, written last: a folder without a manifest, or whose manifest was
made from other inputs or settings, is never taken for a finished cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from skinseg import __version__
from skinseg.config import PrepareConfig
from skinseg.data.images import binarise, grey_levels, load_rgb, read_mask_grey
from skinseg.data.layouts import Pair, discover_pairs
from skinseg.data.splits import assign_splits
from skinseg.errors import SkinsegError
from skinseg.fileio import write_text

MANIFEST = "manifest.json"
CACHE_FORMAT = "skinseg-prepared/1"


@dataclass
class PrepareResult:
    out_dir: Path
    layout: str
    count: int
    split_sizes: dict[str, int]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    reused: bool = False
    seconds: float = 0.0


def _fingerprint(config: PrepareConfig, pairs: list[Pair]) -> str:
    digest = hashlib.sha256(json.dumps(config.cache_settings(), sort_keys=True).encode())
    for pair in pairs:
        for path in (pair.image, pair.mask):
            stat = path.stat()
            digest.update(f"{pair.id}|{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


_outputs: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}


def _open_outputs(images_path: str, masks_path: str) -> tuple[np.ndarray, np.ndarray]:
    """The output arrays, memory-mapped once per worker process (the OS writes the pages back)."""
    key = (images_path, masks_path)
    if key not in _outputs:
        _outputs.clear()
        _outputs[key] = (np.load(images_path, mmap_mode="r+"), np.load(masks_path, mmap_mode="r+"))
    return _outputs[key]


def _process_pair(job: tuple[int, Pair, int, str, str]) -> tuple[int, dict | None, tuple[str, str] | None]:
    """Decode, check and resize one pair into slot `index` of the memory-mapped arrays."""
    index, pair, size, images_path, masks_path = job
    try:
        image_bytes = pair.image.read_bytes()
        if not image_bytes:
            return index, None, (str(pair.image), "empty file (0 bytes)")
        image = load_rgb(pair.image, draft_size=size)
        with Image.open(io.BytesIO(image_bytes)) as probe:
            original = probe.size
        grey = read_mask_grey(pair.mask)
        mask = binarise(grey)
    except SkinsegError as exc:
        return index, None, (str(exc.path or pair.image), str(exc).removeprefix(f"{exc.path}: "))
    except Exception as exc:  # a decoder failing in an unforeseen way must not stop the batch
        return index, None, (str(pair.image), f"unreadable ({type(exc).__name__}: {exc})")
    problem = None
    if mask.shape[::-1] != original:
        problem = f"mask is {mask.shape[1]}x{mask.shape[0]} but its image is {original[0]}x{original[1]}"
    elif grey_levels(grey) > 2:
        problem = f"mask has {grey_levels(grey)} grey levels, expected 2 (a binary mask)"
    elif not mask.any():
        problem = "empty mask (no lesion pixels)"
    if problem:
        return index, None, (str(pair.mask), problem)

    if image.shape[:2] != (size, size):
        image = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR, reducing_gap=2.0))
    small_mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.BILINEAR)) > 127
    images, masks = _open_outputs(images_path, masks_path)
    images[index] = image
    masks[index] = small_mask
    return index, {"id": pair.id, "image": str(pair.image), "mask": str(pair.mask),
                   "original_size": list(original), "sha256": hashlib.sha256(image_bytes).hexdigest()}, None


def _run_jobs(jobs: list, workers: int, on_done: Callable[[], None]) -> list:
    if workers <= 1 or len(jobs) < 32:
        results = []
        for job in jobs:
            results.append(_process_pair(job))
            on_done()
        return results
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    results = []
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        for result in pool.map(_process_pair, jobs, chunksize=max(8, len(jobs) // (workers * 8))):
            results.append(result)
            on_done()
    return results


def load_manifest(out_dir: str | Path) -> dict | None:
    path = Path(out_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == CACHE_FORMAT else None


def prepare_dataset(config: PrepareConfig, progress: Callable[[int, int], None] | None = None) -> PrepareResult:
    """Build (or reuse) the cache for `config.data` in `config.out`."""
    start = time.perf_counter()
    out = Path(config.out)
    discovery = discover_pairs(config.data, config.layout, config.mask_suffix, zip_cache=out / "unzipped")
    if config.strict and discovery.problems:
        path, reason = discovery.problems[0]
        raise SkinsegError(reason, path)
    fingerprint = _fingerprint(config, discovery.pairs)
    previous = load_manifest(out)
    if previous and previous.get("fingerprint") == fingerprint and not config.force:
        return PrepareResult(out, discovery.layout, previous["count"], previous["split_sizes"],
                             [tuple(s) for s in previous["skipped"]], reused=True,
                             seconds=time.perf_counter() - start)

    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # from here on the folder is not a finished cache
    size, count = config.size, len(discovery.pairs)
    images_tmp, masks_tmp = out / ".images.tmp.npy", out / ".masks.tmp.npy"
    np.lib.format.open_memmap(images_tmp, "w+", np.uint8, (count, size, size, 3)).flush()
    np.lib.format.open_memmap(masks_tmp, "w+", np.uint8, (count, size, size)).flush()

    jobs = [(i, pair, size, str(images_tmp), str(masks_tmp)) for i, pair in enumerate(discovery.pairs)]
    done = 0

    def on_done() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, count)

    workers = config.workers or min(os.cpu_count() or 1, 8)
    results = sorted(_run_jobs(jobs, workers, on_done), key=lambda r: r[0])
    _outputs.clear()
    skipped = [(str(p), reason) for p, reason in discovery.problems]
    errors = [error for _, _, error in results if error]
    if config.strict and errors:
        raise SkinsegError(errors[0][1], errors[0][0])
    skipped += errors
    kept = [(i, info) for i, info, _ in results if info is not None]
    if not kept:
        images_tmp.unlink(missing_ok=True)
        masks_tmp.unlink(missing_ok=True)
        raise SkinsegError(f"no usable image/mask pairs ({len(skipped)} skipped; first: "
                           f"{skipped[0][0]}: {skipped[0][1]})", config.data)

    images = np.load(images_tmp, mmap_mode="r")
    masks = np.load(masks_tmp, mmap_mode="r")
    if len(kept) < count:  # compact the arrays, dropping the slots of skipped pairs
        keep = np.array([i for i, _ in kept])
        np.save(out / ".images.compact.npy", images[keep])
        np.save(out / ".masks.compact.npy", masks[keep])
        del images, masks
        os.replace(out / ".images.compact.npy", images_tmp)
        os.replace(out / ".masks.compact.npy", masks_tmp)
        images = np.load(images_tmp, mmap_mode="r")
        masks = np.load(masks_tmp, mmap_mode="r")

    entries = [info for _, info in kept]
    splits = assign_splits([e["id"] for e in entries], config.split, config.seed, config.split_file)
    for entry, split in zip(entries, splits):
        entry["split"] = split
    train_rows = np.array([s == "train" for s in splits]) if "train" in splits else np.ones(len(splits), bool)
    mean, std = _channel_stats(images, train_rows)
    del images, masks
    os.replace(images_tmp, out / "images.npy")
    os.replace(masks_tmp, out / "masks.npy")

    split_sizes = {name: splits.count(name) for name in ("train", "val", "test")}
    manifest = {
        "format": CACHE_FORMAT, "skinseg_version": __version__, "fingerprint": fingerprint,
        "settings": config.cache_settings(), "source": str(Path(config.data).resolve()),
        "layout": discovery.layout, "size": size, "count": len(entries), "split_sizes": split_sizes,
        "normalisation": {"mean": mean, "std": std}, "skipped": skipped, "items": entries,
    }
    write_text(out / MANIFEST, json.dumps(manifest, indent=1))
    return PrepareResult(out, discovery.layout, len(entries), split_sizes, skipped,
                         seconds=time.perf_counter() - start)


def _channel_stats(images: np.ndarray, rows: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (0-255 scale) over the training images, in chunks to bound memory."""
    total = np.zeros(3)
    total_sq = np.zeros(3)
    pixels = 0
    for start in range(0, len(images), 256):
        chunk = images[start:start + 256][rows[start:start + 256]].astype(np.float64)
        total += chunk.sum(axis=(0, 1, 2))
        total_sq += (chunk**2).sum(axis=(0, 1, 2))
        pixels += chunk.shape[0] * chunk.shape[1] * chunk.shape[2]
    mean = total / max(pixels, 1)
    std = np.sqrt(np.maximum(total_sq / max(pixels, 1) - mean**2, 1e-6))
    return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]

