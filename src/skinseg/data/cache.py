"""A prepared set's folder: its manifest, what prepare may find there, and the plan of a prepare into it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from skinseg.data.config import PrepareConfig
from skinseg.data.splits import parse_group_by
from skinseg.errors import SkinsegError
from skinseg.plan import MARKERS, Plan

MANIFEST = "manifest.json"
CACHE_FORMAT = "skinseg-prepared/1"


def load_manifest(out_dir: str | Path, strict: bool = True) -> dict | None:
    """A folder's prepared-set manifest, or None where it has none. One that claims to be skinseg's but lacks
    what the readers need, or a manifest.json that is not JSON at all, is an error naming it (`strict`; prepare,
    which replaces it, reads it as none), not a folder read as raw data or a traceback later."""
    path = Path(out_dir) / MANIFEST
    try:
        text = path.read_bytes()
    except OSError:
        return None
    again = (
        "prepare the data again with `skinseg prepare`, or, if this folder is not a prepared set, move the file away"
    )
    try:
        manifest = json.loads(text.decode("utf-8"))
    except ValueError as exc:
        if not strict:
            return None
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"not JSON ({exc})"
        raise SkinsegError(f"damaged prepared set: {MANIFEST} is {reason}: {again}", path) from None
    if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
        if strict and (Path(out_dir) / OWN_FILES[1]).exists():  # beside prepare's arrays: a cache's, damaged
            raise SkinsegError(f"damaged prepared set: {MANIFEST} is not a skinseg manifest: {again}", path)
        return None
    shapes = {"items": list, "split_sizes": dict, "count": int, "size": int}
    wrong = [key for key, kind in shapes.items() if not isinstance(manifest.get(key), kind)]
    wrong += [] if wrong else [f"items[{i}]" for i, item in enumerate(manifest["items"]) if not _item_ok(item)][:1]
    if wrong:
        raise SkinsegError(
            f"damaged prepared set: {wrong[0]} is missing or malformed; run `skinseg prepare` again", path
        )
    return manifest


def _item_ok(item: object) -> bool:
    return isinstance(item, dict) and all(isinstance(item.get(k), str) for k in ("id", "image", "mask", "split"))


LOCK, MARKER = MARKERS  # the folder's lock (which older versions left in every cache), and the mark that
# prepare makes when it first writes a folder: the folder is a cache, not the user's


def plan_prepare(config: PrepareConfig) -> Plan:
    """What prepare reads (the data folder or zip, a split file, a grouping file) and writes (the cache folder
    and its three files, locked while they are written)."""
    plan = Plan("prepare", overwrite=config.force)
    data, out = Path(config.data), Path(config.out)
    plan.read_data_set(data)
    if config.split_file is not None:
        plan.read(config.split_file, "split file")
    if (grouping := group_file(config)) is not None:
        plan.read(grouping, "grouping file")
    plan.write(out, "`out`", owned=True, lock=True)
    for name in OWN_FILES:  # prepare's own, replaced when its data or settings change (check_out_folder)
        plan.write(out / name, "cache file", continued=True)
    return plan


OWN_FILES = (MANIFEST, "images.npy", "masks.npy")
# What prepare itself writes into its `out` folder: anything else there is the user's, and the folder is refused.
OWN_NAMES = re.compile("|".join(map(re.escape, (*OWN_FILES, *MARKERS, "unzipped"))) + r"|\.(images|masks)\..*\.npy")


def check_out_folder(config: PrepareConfig) -> None:
    """Before anything is written: `out` holds nothing but a skinseg cache (one prepare made: its marker, or
    a manifest of skinseg's), of this data set (another's is replaced only with `force`)."""
    out, data = Path(config.out), Path(config.data)
    names = sorted(entry.name for entry in out.iterdir()) if out.is_dir() else []
    foreign = [name for name in names if not OWN_NAMES.fullmatch(name)]
    manifest = load_manifest(out, strict=False)
    ours = any((out / name).exists() for name in MARKERS) or manifest is not None
    if names and (foreign or not ours):
        first = (foreign or names)[0]
        words = f"holds files that are not a skinseg cache (first: {first}): give a new or empty folder"
        raise SkinsegError(words, out)
    source = manifest.get("source") if manifest else None
    if source and source != str(data.resolve()) and not config.force:
        raise SkinsegError(f"holds the prepared set of {source}: give another `out`, or `force` to replace it", out)


def group_file(config: PrepareConfig) -> Path | None:
    """The file of `group_by` FILE:COLUMN; a relative one is looked up in the data folder too."""
    if config.group_by in (None, "none"):
        return None
    path = parse_group_by(config.group_by)[0]
    if not path.is_absolute() and not path.exists() and (Path(config.data) / path).exists():
        path = Path(config.data) / path
    return path


def replacement_note(previous: dict, config: PrepareConfig, fingerprint: str) -> str:
    """Why prepare replaces the cache it found in `out` (whose manifest is `previous`; `fingerprint`: the new
    cache's), for the user: runs trained on a cache whose fingerprint changed cannot be resumed on the new one."""
    then, now = previous.get("settings") or {}, config.cache_settings()
    if previous.get("fingerprint") == fingerprint:
        return f"rebuilding the prepared set in {config.out} (`force`) from the same files and settings"
    if previous.get("source") != str(Path(config.data).resolve()):
        why = f"it held the prepared set of {previous.get('source')}"
    elif then.get("size", previous.get("size")) != now["size"]:
        why = f"it was prepared at {then.get('size', previous.get('size'))} px, now at {now['size']} px"
    elif changed := [name for name in now if name in then and then[name] != now[name]]:
        why = "; ".join(f"`{name}` was {then[name]}, now {now[name]}" for name in changed)
    else:
        why = "its data changed since it was prepared (files added, removed or modified)"
    return f"replacing the prepared set in {config.out}: {why} (runs trained on it cannot be resumed on this one)"
