"""Reproducible train/val/test splits that are stable per image id.

Each id is hashed with the seed to a number u in [0, 1); u < train fraction goes to train, the next
val fraction to val, the rest to test. An image's split depends only on its id and the seed, so adding
images to a folder never moves the ones already assigned; the counts are therefore close to, not
exactly, the fractions (2,594 ISIC 2018 images with seed 0: see docs/prepare.md).
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from skinseg.errors import SkinsegError

SPLITS = ("train", "val", "test")


def parse_fractions(text: str) -> tuple[float, float, float]:
    """'60/20/20' or '0.6,0.2,0.2' -> fractions that sum to 1."""
    parts = [p for p in text.replace(",", "/").replace(":", "/").split("/") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise SkinsegError(f"--split must look like 60/20/20, got '{text}'") from None
    if len(values) != 3 or any(v < 0 for v in values) or sum(values) <= 0:
        raise SkinsegError(f"--split needs three non-negative numbers (train/val/test), got '{text}'")
    total = sum(values)
    return values[0] / total, values[1] / total, values[2] / total


def unit_hash(image_id: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def read_split_file(path: str | Path) -> dict[str, str]:
    """A given split: JSON {"train": [ids], "val": [...], "test": [...]} or {id: split}, or CSV id,split."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SkinsegError(f"cannot read split file ({exc.strerror})", path) from None
    mapping: dict[str, str] = {}
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SkinsegError(f"split file is not valid JSON ({exc.msg})", path) from None
        if isinstance(data, dict) and set(data) <= set(SPLITS) and all(isinstance(v, list) for v in data.values()):
            mapping = {str(i): split for split, ids in data.items() for i in ids}
        elif isinstance(data, dict):
            mapping = {str(k): str(v) for k, v in data.items()}
    else:
        for row in csv.reader(text.splitlines()):
            if len(row) >= 2 and row[0].strip() and row[0].strip().lower() not in ("id", "image", "image_id"):
                mapping[row[0].strip()] = row[1].strip().lower()
    bad = {s for s in mapping.values() if s not in SPLITS}
    if not mapping or bad:
        raise SkinsegError(f"split file must map ids to train/val/test (found {sorted(bad) or 'no rows'})", path)
    return mapping


def assign_splits(
    ids: list[str], fractions: tuple[float, float, float], seed: int, split_file: str | Path | None = None
) -> list[str]:
    """The split of each id: from the split file where it names the id, else by the seeded hash."""
    given = read_split_file(split_file) if split_file else {}
    train, val, _ = fractions
    result = []
    for image_id in ids:
        if image_id in given:
            result.append(given[image_id])
            continue
        u = unit_hash(image_id, seed)
        result.append("train" if u < train else "val" if u < train + val else "test")
    return result
