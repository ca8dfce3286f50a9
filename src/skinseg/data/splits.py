"""Reproducible train/val/test splits that are stable per image id.

Each id is hashed with the seed to a number u in [0, 1); u < train fraction goes to train, the next
val fraction to val, the rest to test. An image's split depends only on its id and the seed, so adding
images to a folder never moves the ones already assigned; the counts are therefore close to, not
exactly, the fractions (2,594 ISIC 2018 images with seed 0: see docs/prepare.md).

Images can be grouped (HAM10000 has several images of one lesion, named by `lesion_id`): then the group id
is hashed instead of the image id, so every image of a group falls in the same split and no lesion leaks
from training into testing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

from skinseg.errors import SkinsegError
from skinseg.fileio import NAMES_AS_THEY_ARE

SPLITS = ("train", "val", "test")


def parse_fractions(text: str) -> tuple[float, float, float]:
    """'60/20/20' or '0.6,0.2,0.2' -> fractions that sum to 1."""
    parts = [p for p in text.replace(",", "/").replace(":", "/").split("/") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise SkinsegError(f"`split` must look like 60/20/20, got '{text}'") from None
    if len(values) != 3 or not all(math.isfinite(v) and v >= 0 for v in values) or sum(values) <= 0:
        raise SkinsegError(f"`split` needs three finite, non-negative numbers (train/val/test), got '{text}'")
    total = sum(values)
    return values[0] / total, values[1] / total, values[2] / total


def unit_hash(image_id: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{image_id}".encode("utf-8", NAMES_AS_THEY_ARE)).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def read_split_file(path: str | Path) -> dict[str, str]:
    """A given split: JSON {"train": [ids], "val": [...], "test": [...]} or {id: split}, or CSV id,split."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SkinsegError(f"cannot read split file ({exc.strerror})", path) from None
    except UnicodeDecodeError:
        raise SkinsegError("split file is not UTF-8 text (save it as UTF-8 CSV or JSON)", path) from None
    rows: list[tuple[str, str]] = []
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SkinsegError(f"split file is not valid JSON ({exc.msg})", path) from None
        if isinstance(data, dict) and set(data) <= set(SPLITS) and all(isinstance(v, list) for v in data.values()):
            rows = [(str(i), split) for split, ids in data.items() for i in ids]
        elif isinstance(data, dict):
            rows = [(str(k), str(v)) for k, v in data.items()]
    else:
        for row in csv.reader(text.splitlines()):
            if len(row) >= 2 and row[0].strip() and row[0].strip().lower() not in ("id", "image", "image_id"):
                rows.append((row[0].strip(), row[1].strip().lower()))
    mapping: dict[str, str] = {}
    for image_id, split in rows:
        if mapping.setdefault(image_id, split) != split:
            raise SkinsegError(f"split file puts {image_id} in both {mapping[image_id]} and {split}", path)
    bad = {i: s for i, s in mapping.items() if s not in SPLITS}
    if not mapping:
        raise SkinsegError("split file must map ids to train/val/test (no rows found)", path)
    if bad:
        first = next(iter(bad))
        found = f"{len(bad)} ids with another split name; first: {first} -> '{bad[first]}'"
        raise SkinsegError(f"split file must map ids to train/val/test ({found})", path)
    return mapping


def parse_group_by(text: str) -> tuple[Path, str]:
    """'metadata.csv:lesion_id' -> (Path('metadata.csv'), 'lesion_id')."""
    path, _, column = text.rpartition(":")
    if not path or not column.strip():
        raise SkinsegError(f"`group_by` must look like FILE.csv:COLUMN, got '{text}'")
    return Path(path), column.strip()


def read_groups(path: str | Path, column: str, ids: list[str]) -> dict[str, str]:
    """{image id: group} from a CSV with a column of group ids. The image-id column is the one whose values
    name the most of `ids` (e.g. HAM10000's `image_id`); images the file does not name form their own group."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SkinsegError(f"cannot read the grouping file ({exc})", path) from None
    columns = list(rows[0]) if rows else []
    if column not in columns:
        raise SkinsegError(f"no column '{column}' in the grouping file (columns: {', '.join(columns) or 'none'})", path)
    wanted = set(ids)
    id_column = max(columns, key=lambda c: sum((row.get(c) or "").strip() in wanted for row in rows))
    groups = {
        (row.get(id_column) or "").strip(): (row.get(column) or "").strip()
        for row in rows
        if (row.get(column) or "").strip()
    }
    if not wanted & groups.keys():
        raise SkinsegError(f"the grouping file names none of the {len(ids)} images", path)
    return groups


def assign_splits(
    ids: list[str],
    fractions: tuple[float, float, float],
    seed: int,
    split_file: str | Path | None = None,
    groups: dict[str, str] | None = None,
) -> list[str]:
    """The split of each id: from the split file where it names the id, else by the seeded hash of its group
    (of the id itself where it has none)."""
    given = read_split_file(split_file) if split_file else {}
    if given and not given.keys() & set(ids):
        raise SkinsegError(
            f"none of the split file's {len(given)} ids names an image here (first: {next(iter(given))}; an id is"
            f" the image's file name without its extension, e.g. {ids[0] if ids else '?'})",
            split_file,
        )
    groups = groups or {}
    train, val, _ = fractions
    result = []
    for image_id in ids:
        if image_id in given:
            result.append(given[image_id])
            continue
        group = groups.get(image_id)
        u = unit_hash(f"group:{group}" if group else image_id, seed)
        result.append("train" if u < train else "val" if u < train + val else "test")
    return result
