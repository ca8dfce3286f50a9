"""A user's labelled images, read once: model inputs and training masks at the model's size, and each truth
mask at the size it is scored at (its own, or at most MAX_SCORED_SIDE px on the longer side)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from skinseg.data.images import binarise, decode_rgb, not_binary, read_mask_grey, resize_mask
from skinseg.data.layouts import Pair, discover_pairs
from skinseg.data.prepare import load_manifest
from skinseg.data.sources import split_pairs
from skinseg.errors import SkinsegError
from skinseg.fileio import file_sha256

MIN_PAIRS = 5  # fewer cannot be cross-validated
MAX_SCORED_SIDE = 512  # truth masks larger than this are scored at this size (Dice barely moves; time does)


@dataclass
class Examples:
    ids: list[str]
    images: list[Path]
    inputs: np.ndarray  # uint8 (N, S, S, 3): what the model sees
    masks: np.ndarray  # bool (N, S, S): what it is trained toward
    truths: list[np.ndarray]  # bool, each at its scoring size
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    fingerprint: str = ""  # sha256 over the sorted (id, image sha256, mask sha256)

    def __len__(self) -> int:
        return len(self.ids)


def find_pairs(data: Path, zip_cache: Path) -> tuple[list[Pair], list[tuple[Path, str]]]:
    """The image/mask pairs of `data`: a prepared cache (all its splits), a raw folder or a zip."""
    if load_manifest(data) is not None:
        return split_pairs(data, "all")[0], []
    found = discover_pairs(data, zip_cache=zip_cache)
    return found.pairs, list(found.problems)


def load_examples(
    data: Path, size: int, zip_cache: Path, on_item: Callable[[int, int], None] | None = None
) -> Examples:
    """Read every pair of `data`; pairs that cannot be used are skipped with the reason; fewer than MIN_PAIRS
    usable pairs is an error that names the folder."""
    pairs, skipped = find_pairs(Path(data), zip_cache)
    ids, images, inputs, masks, truths, digests = [], [], [], [], [], []
    for done, pair in enumerate(pairs, 1):
        try:
            model_input, truth = _read_pair(pair, size)
        except SkinsegError as exc:
            skipped.append((exc.path or pair.image, str(exc).removeprefix(f"{exc.path}: ")))
        else:
            ids.append(pair.id)
            images.append(pair.image)
            inputs.append(model_input)
            masks.append(resize_mask(truth, size))
            truths.append(_scored_size(truth))
            digests.append(f"{pair.id}:{file_sha256(pair.image)}:{file_sha256(pair.mask)}")
        if on_item is not None:
            on_item(done, len(pairs))
    if len(ids) < MIN_PAIRS:
        first = f"; first skipped: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise SkinsegError(f"{len(ids)} usable image/mask pairs, adapting needs at least {MIN_PAIRS}{first}", data)
    fingerprint = hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()
    return Examples(ids, images, np.stack(inputs), np.stack(masks), truths, skipped, fingerprint)


def _read_pair(pair: Pair, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The model's input (decoded as `segment` decodes it) and the truth mask at its own size."""
    model_input, (width, height) = decode_rgb(pair.image, size)
    grey = read_mask_grey(pair.mask)
    if grey.shape != (height, width):
        raise SkinsegError(f"mask is {grey.shape[1]}x{grey.shape[0]} but its image is {width}x{height}", pair.mask)
    problem = not_binary(grey)
    if problem is not None:
        raise SkinsegError(problem, pair.mask)
    truth = binarise(grey)
    if not truth.any():
        raise SkinsegError("empty mask (no lesion pixels)", pair.mask)
    return model_input, truth


def _scored_size(truth: np.ndarray) -> np.ndarray:
    height, width = truth.shape
    scale = MAX_SCORED_SIDE / max(height, width)
    if scale >= 1:
        return truth
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(truth).resize(shape, Image.Resampling.NEAREST))
