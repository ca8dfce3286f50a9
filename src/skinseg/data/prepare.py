"""`skinseg prepare`: pair, check, resize, cache and split a dataset.

The cache is a folder with `images.npy` (N, S, S, 3) and `masks.npy` (N, S, S) uint8 arrays that can be
memory-mapped, and `manifest.json`, written last: a folder without a manifest, or whose manifest was
made from other inputs or settings, is never taken for a finished cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skinseg import __version__
from skinseg.data.cache import (
    CACHE_FORMAT,
    MANIFEST,
    MARKER,
    check_out_folder,
    group_file,
    load_manifest,
    plan_prepare,
    replacement_note,
)
from skinseg.data.config import PrepareConfig
from skinseg.data.decoding import close_outputs, process_pair, start_worker
from skinseg.data.layouts import Discovery, Pair, discover_pairs
from skinseg.data.npy import allocate, check_room, keep_rows
from skinseg.data.splits import assign_splits, parse_group_by, read_groups
from skinseg.errors import MIN_NORMALISATION_STD, SkinsegError
from skinseg.fileio import NAMES_AS_THEY_ARE, atomic_path, interrupts_held, usual_permissions


@dataclass
class PrepareResult:
    out_dir: Path
    layout: str
    count: int
    split_sizes: dict[str, int]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    reused: bool = False
    seconds: float = 0.0
    groups: dict | None = None  # {"file", "column", "count"} when images were split by group
    manifest: dict | None = field(default=None, repr=False)  # the cache's manifest.json, as written or reused

    @property
    def notes(self) -> list[str]:
        """What the user should know of the split: a split left empty (by `split` or by the grouping)."""
        empty = [name for name in ("train", "val", "test") if not self.split_sizes.get(name)]
        uses = {"train": "nothing to train on", "val": "training selects on training Dice", "test": "nothing to test"}
        return [f"the {name} split is empty: {uses[name]}" for name in empty]


def _fingerprint(config: PrepareConfig, pairs: list[Pair], group_file: Path | None) -> str:
    digest = hashlib.sha256(json.dumps(config.cache_settings(), sort_keys=True).encode())
    if group_file is not None:
        stat = group_file.stat()
        digest.update(f"groups|{group_file}|{stat.st_size}|{stat.st_mtime_ns}\n".encode("utf-8", NAMES_AS_THEY_ARE))
    for pair in pairs:
        for path in (pair.image, pair.mask):
            stat = path.stat()
            digest.update(f"{pair.id}|{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode("utf-8", NAMES_AS_THEY_ARE))
    return digest.hexdigest()


def _run_jobs(jobs: list, workers: int, on_done: Callable[[], None]) -> list:
    if workers <= 1 or len(jobs) < 32:
        results = []
        for job in jobs:
            results.append(process_pair(job))
            on_done()
        return results
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    results = []
    try:
        with ProcessPoolExecutor(workers, multiprocessing.get_context(method), start_worker) as pool:
            for result in pool.map(process_pair, jobs, chunksize=_chunk(len(jobs), workers)):
                results.append(result)
                on_done()
    except BrokenProcessPool:  # a worker killed by the OS (out of memory), its error lost with it
        raise SkinsegError(
            "a decoding process was killed (out of memory?): prepare again with fewer `workers`",
            Path(jobs[0][3]).parent,
        ) from None
    return results


def _chunk(count: int, workers: int) -> int:
    """Pairs sent to a worker at a time: few enough that the workers finish together (the last chunks are what one
    waits for while the other has none left), enough that sending them costs little."""
    return max(1, min(16, count // (workers * 8)))


def prepare_dataset(
    config: PrepareConfig,
    progress: Callable[[int, int], None] | None = None,
    wait: bool = False,
    on_notes: Callable[[list[str]], None] | None = None,
) -> PrepareResult:
    """Build (or reuse) the cache for `config.data` in `config.out`. Another run building the same folder is
    waited for (`wait`) or refused. `on_notes` hears when a cache found there is replaced, and why."""
    plan = plan_prepare(config)
    plan.check()
    check_out_folder(config)
    with plan.hold(wait):
        out = Path(config.out)
        (out / MARKER).touch()
        for stale in out.glob(".*.tmp*.npy"):  # what a killed run left; no run can be writing it now
            stale.unlink(missing_ok=True)
        return _prepare(config, progress, on_notes)


def _prepare(
    config: PrepareConfig,
    progress: Callable[[int, int], None] | None,
    on_notes: Callable[[list[str]], None] | None,
) -> PrepareResult:
    """Discover, then reuse the cache if nothing changed, else decode every pair, split and write the manifest."""
    start = time.perf_counter()
    out = Path(config.out)
    discovery = discover_pairs(config.data, config.layout, config.mask_suffix, zip_cache=out / "unzipped")
    if config.strict and discovery.problems:
        path, reason = discovery.problems[0]
        raise SkinsegError(reason, path)
    group_file, group_column = _grouping(config, discovery)
    fingerprint = _fingerprint(config, discovery.pairs, group_file)
    previous = load_manifest(out, strict=False)
    if previous and previous.get("fingerprint") == fingerprint and not config.force:
        return _reused(out, discovery.layout, previous, time.perf_counter() - start)
    check_room(out, len(discovery.pairs), config.size)
    if previous and on_notes:
        on_notes([replacement_note(previous, config, fingerprint)])
    with _temporary_arrays(out) as arrays:
        entries, skipped = _decode_all(config, discovery, progress, arrays)
        manifest = _manifest(config, discovery.layout, entries, skipped, fingerprint, (group_file, group_column))
        _replace_cache(out, arrays, json.dumps(manifest, indent=1))
    return PrepareResult(
        out,
        discovery.layout,
        len(entries),
        manifest["split_sizes"],
        skipped,
        seconds=time.perf_counter() - start,
        groups=manifest["groups"],
        manifest=manifest,
    )


def _manifest(
    config: PrepareConfig,
    layout: str,
    entries: list[dict],
    skipped: list,
    fingerprint: str,
    grouping: tuple[Path | None, str | None],
) -> dict:
    """The cache's manifest: its items with their splits, the normalisation of its training split, and what
    was skipped."""
    group_file, group_column = grouping
    ids = [e["id"] for e in entries]
    groups = read_groups(group_file, group_column, ids) if group_file and group_column else {}
    splits = assign_splits(ids, config.split, config.seed, config.split_file, groups)
    for entry, split in zip(entries, splits, strict=False):
        entry["split"] = split
        if entry["id"] in groups:
            entry["group"] = groups[entry["id"]]
    mean, std = _channel_stats(entries, [s == "train" for s in splits], config.size**2)
    for entry in entries:
        del entry["channel_sum"], entry["channel_sq_sum"]
    group_info = (
        {"file": str(group_file), "column": group_column, "count": len({groups[i] for i in ids if i in groups})}
        if groups
        else None
    )
    return {
        "format": CACHE_FORMAT,
        "skinseg_version": __version__,
        "fingerprint": fingerprint,
        "settings": config.cache_settings(),
        "source": str(Path(config.data).resolve()),
        "layout": layout,
        "size": config.size,
        "count": len(entries),
        "split_sizes": {name: splits.count(name) for name in ("train", "val", "test")},
        "groups": group_info,
        "normalisation": {"mean": mean, "std": std},
        "skipped": skipped,
        "items": entries,
    }


@contextlib.contextmanager
def _temporary_arrays(out: Path) -> Iterator[tuple[Path, Path]]:
    """Two unique hidden .npy files in `out` for the new images and masks; whatever becomes of the run (an
    error, Ctrl-C, SIGTERM), those not renamed into the cache are removed on the way out."""
    made: list[Path] = []
    try:
        for name in ("images", "masks"):
            fd, name_made = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp.npy", dir=out)
            os.close(fd)
            made.append(Path(name_made))
        yield made[0], made[1]
    finally:
        with interrupts_held():
            for tmp in made:
                tmp.unlink(missing_ok=True)
                tmp.with_suffix(".copy.npy").unlink(missing_ok=True)  # npy.keep_rows's, where it copies


def _replace_cache(out: Path, arrays: tuple[Path, Path], manifest: str) -> None:
    """The new arrays and manifest in place of the old cache, in one step that an interrupt waits for: until
    here the previous cache was whole and usable (the new manifest is written to its temporary first: a full
    disk leaves the old cache as it was); without its manifest for these few renames, a folder is never taken
    for a finished cache (a kill -9 in between leaves one that the next prepare rebuilds)."""
    with interrupts_held(), atomic_path(out / MANIFEST) as manifest_tmp:
        manifest_tmp.write_text(manifest, encoding="utf-8", errors=NAMES_AS_THEY_ARE)
        (out / MANIFEST).unlink(missing_ok=True)
        for tmp, name in zip(arrays, ("images.npy", "masks.npy"), strict=True):
            usual_permissions(tmp)
            os.replace(tmp, out / name)


def _reused(out: Path, layout: str, manifest: dict, seconds: float) -> PrepareResult:
    """The result of a run that found the cache up to date."""
    skipped = [(str(path), str(reason)) for path, reason in manifest["skipped"]]
    return PrepareResult(
        out_dir=out,
        layout=layout,
        count=manifest["count"],
        split_sizes=manifest["split_sizes"],
        skipped=skipped,
        reused=True,
        seconds=seconds,
        groups=manifest.get("groups"),
        manifest=manifest,
    )


def _decode_all(
    config: PrepareConfig,
    discovery: Discovery,
    progress: Callable[[int, int], None] | None,
    arrays: tuple[Path, Path],
) -> tuple[list[dict], list]:
    """Decode and resize every pair into the temporary `arrays` (compacted when pairs were skipped): the items
    kept, and the pairs skipped with their reasons."""
    size, count = config.size, len(discovery.pairs)
    images_tmp, masks_tmp = arrays
    out = Path(config.out)
    allocate(images_tmp, (count, size, size, 3), out / "images.npy")
    allocate(masks_tmp, (count, size, size), out / "masks.npy")
    jobs = [(i, pair, size, str(images_tmp), str(masks_tmp)) for i, pair in enumerate(discovery.pairs)]
    done = 0

    def on_done() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, count)

    workers = config.workers or min(os.cpu_count() or 1, 8)
    try:
        results = sorted(_run_jobs(jobs, workers, on_done), key=lambda r: r[0])
    finally:
        close_outputs()  # what this process opened, where it decoded the pairs itself
    skipped = [(str(p), reason) for p, reason in discovery.problems]
    errors = [error for _, _, error in results if error]
    if config.strict and errors:
        raise SkinsegError(errors[0][1], errors[0][0])
    skipped += errors
    kept = [(i, info) for i, info, _ in results if info is not None]
    if not kept:
        raise SkinsegError(
            f"no usable image/mask pairs ({len(skipped)} skipped; first: {skipped[0][0]}: {skipped[0][1]})", config.data
        )
    if len(kept) < count:  # compact the arrays, dropping the slots of skipped pairs
        for tmp, name in ((images_tmp, "images.npy"), (masks_tmp, "masks.npy")):
            keep_rows(tmp, [i for i, _ in kept], out / name)
    return [info for _, info in kept], skipped


def _grouping(config: PrepareConfig, discovery: Discovery) -> tuple[Path | None, str | None]:
    """The file and column that group images for the split: `group_by`, else the layout's own (HAM10000's
    metadata and its lesion_id), else none. A relative `group_by` file is looked up in the data folder too."""
    if config.group_by == "none":
        return None, None
    if config.group_by is None:
        return discovery.group_file, discovery.group_column
    path = group_file(config)
    if path is None or not path.is_file():
        raise SkinsegError("grouping file not found (`group_by` FILE:COLUMN)", path)
    return path, parse_group_by(config.group_by)[1]


def _channel_stats(entries: list[dict], rows: list[bool], pixels_per_image: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (0-255 scale) over the chosen images, from the workers' sums."""
    chosen = [e for e, keep in zip(entries, rows, strict=False) if keep] or entries
    total = np.sum([e["channel_sum"] for e in chosen], axis=0)
    total_sq = np.sum([e["channel_sq_sum"] for e in chosen], axis=0)
    count = pixels_per_image * len(chosen)
    mean = total / count
    std = np.maximum(np.sqrt(np.maximum(total_sq / count - mean**2, 0.0)), MIN_NORMALISATION_STD)
    return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]
