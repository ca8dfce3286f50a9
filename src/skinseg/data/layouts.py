"""Finding image/mask pairs in the folder layouts that ISIC 2016-2018, HAM10000, PH2 and most users' data come in.

Every layout is one rule: which folder names hold images, which hold masks, and which suffix a mask's
file name adds to its image's id (matched case-insensitively). Zip files in the data folder are unpacked
into a cache first, so the challenge downloads work as they are.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from skinseg.data.images import IMAGE_SUFFIXES
from skinseg.errors import SkinsegError
from skinseg.registry import Registry


@dataclass(frozen=True)
class Layout:
    name: str
    image_dir: str
    mask_dir: str
    mask_suffix: str
    ignore: str = r"_superpixels$"
    groups: tuple[str, str] | None = None  # (file name pattern, column): images grouped for the split

    def group_file(self, files: list[Path]) -> Path | None:
        """The layout's metadata file among `files` (the one that names each image's group), if any."""
        if self.groups is None:
            return None
        return next((f for f in files if re.fullmatch(self.groups[0], f.name, re.I)), None)

    def image_id(self, name: _Name) -> str | None:
        if not _matches(self.image_dir, name.folder):
            return None
        return None if _pattern(self.ignore).search(name.stem) else name.stem

    def mask_id(self, name: _Name) -> str | None:
        if not _matches(self.mask_dir, name.folder):
            return None
        match = _pattern(rf"(.+?)(?:{self.mask_suffix})").fullmatch(name.stem)
        return match.group(1) if match else None


@dataclass(frozen=True)
class _Name:
    """An image file's path and the parts of it that a layout reads, taken apart once for every layout."""

    path: Path
    folder: str
    stem: str


def _image_names(files: list[Path]) -> list[_Name]:
    """The files with an image's suffix, taken apart."""
    names = []
    for file in files:
        name = file.name
        dot = name.rfind(".")  # where pathlib's suffix begins, if it has one
        if 0 < dot < len(name) - 1 and name[dot:].lower() in IMAGE_SUFFIXES:
            names.append(_Name(file, file.parent.name, name[:dot]))
    return names


@functools.lru_cache(maxsize=4096)
def _matches(pattern: str, folder_name: str) -> bool:
    """Folder names repeat for every file in them: match each once."""
    return re.fullmatch(pattern, folder_name, re.I) is not None


@functools.lru_cache(maxsize=64)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


MASK_SUFFIXES = "_segmentation|_mask|_lesion"  # what a mask's file name may add to its image's id

LAYOUTS: Registry[Layout] = Registry("layout", also=("auto",))  # "auto": the layout that pairs the most files
for _layout in (
    Layout("isic2018", r"ISIC2018_Task1-2_.*_Input", r"ISIC2018_Task1_.*_GroundTruth", "_segmentation"),
    Layout("isic2017", r"ISIC-2017_.*_Data", r"ISIC-2017_.*_Part1_GroundTruth", "_segmentation"),
    Layout("isic2016", r"ISBI2016_ISIC_Part1_.*_Data", r"ISBI2016_ISIC_Part1_.*_GroundTruth", "_segmentation"),
    Layout(
        "ham10000",
        r"HAM10000_images(_part_\d+)?",
        r"HAM10000_segmentations_lesion_tschandl",
        "_segmentation",
        groups=(r"HAM10000_metadata(\.csv)?", "lesion_id"),
    ),
    Layout("ph2", r"IMD\d+_Dermoscopic_Image", r"IMD\d+_lesion", "_lesion"),
    Layout("generic", r"images?|imgs?|inputs?", r"masks?|labels?|ground_?truths?|annotations?", MASK_SUFFIXES + "|"),
):
    LAYOUTS.register(_layout.name)(_layout)
LAYOUT_CHOICES = LAYOUTS.names


@dataclass(frozen=True)
class Pair:
    id: str
    image: Path
    mask: Path


@dataclass
class Discovery:
    layout: str
    pairs: list[Pair]
    problems: list[tuple[Path, str]] = field(default_factory=list)
    group_file: Path | None = None  # the layout's metadata file that groups images (HAM10000: lesion_id)
    group_column: str | None = None


def _walk_files(root: Path) -> list[Path]:
    """All files under root, sorted; hidden entries and macOS zip debris skipped; symlinked folders not followed."""
    found = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
        within = Path(folder)
        found += [within / f for f in sorted(files) if not f.startswith(".")]
    return found


# A zip that would expand more than this many times its own size, and to more than ZIP_BOMB_BYTES, is refused
# (a zip bomb, or not a data set); dermoscopy images, already compressed, expand about 1x.
ZIP_MAX_RATIO = 100
ZIP_BOMB_BYTES = 1 << 30


def _check_expansion(archive: Path, zipped: zipfile.ZipFile, target: Path) -> None:
    """Refuse a zip that would expand enormously or not fit on the disk, before anything is written."""
    unpacked = sum(member.file_size for member in zipped.infolist())
    packed = archive.stat().st_size
    if unpacked > ZIP_MAX_RATIO * packed and unpacked > ZIP_BOMB_BYTES:
        raise SkinsegError(
            f"zip would expand {unpacked / max(packed, 1):.0f}x, to {unpacked / 2**30:.1f} GiB "
            f"(the limit is {ZIP_MAX_RATIO}x above {ZIP_BOMB_BYTES / 2**30:g} GiB): refused as a possible zip bomb",
            archive,
        )
    folder = next((p for p in (target, *target.parents) if p.exists()), Path.cwd())
    free = shutil.disk_usage(folder).free
    if unpacked > free:
        raise SkinsegError(
            f"zip would expand to {unpacked / 2**30:.1f} GiB but {folder} has only {free / 2**30:.1f} GiB free",
            archive,
        )


def unpack_zips(root: Path, cache: Path) -> list[Path]:
    """Unpack every .zip directly in `root` (or `root` itself if it is a zip) into `cache`; reused when present."""
    zips = [root] if root.is_file() else sorted(p for p in root.glob("*.zip") if p.is_file())
    unpacked = []
    for archive in zips:
        stamp = f"{archive.stat().st_size}-{archive.stat().st_mtime_ns}"
        target = cache / archive.stem
        marker = target / ".skinseg-unpacked"
        if not (marker.is_file() and marker.read_text() == stamp):
            _extract_whole(archive, target, stamp)
        unpacked.append(target)
    return unpacked


def _extract_whole(archive: Path, target: Path, stamp: str) -> None:
    """Unpack into a scratch folder renamed to `target` when complete: a failed unpack leaves nothing under the
    real names (a member with a bad CRC left a 0-byte file)."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.infolist():
                name = Path(member.filename)
                if name.is_absolute() or ".." in name.parts:
                    raise SkinsegError(f"zip member with an unsafe path: {member.filename}", archive)
            _check_expansion(archive, zipped, target)
            zipped.extractall(partial)
        (partial / ".skinseg-unpacked").write_text(stamp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
    except zipfile.BadZipFile as exc:
        raise SkinsegError(f"not a valid zip file ({exc})", archive) from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _pair_with(layout: Layout, files: list[Path], names: list[_Name]) -> Discovery:
    images: dict[str, Path] = {}
    masks: dict[str, Path] = {}
    problems: list[tuple[Path, str]] = []
    folders = {name.folder for name in names}
    if not any(_matches(layout.image_dir, f) or _matches(layout.mask_dir, f) for f in folders):
        names = []  # none of its folders: nothing to pair, and no need to look at each file
    for name in names:
        mask_id = layout.mask_id(name)
        found, kind, key = (masks, "mask", mask_id) if mask_id is not None else (images, "image", layout.image_id(name))
        if key is None:
            continue
        if key in found:
            problems.append((name.path, f"second {kind} for id {key} (kept {found[key].name})"))
        else:
            found[key] = name.path
    pairs = [Pair(i, images[i], masks[i]) for i in sorted(images) if i in masks]
    problems += [(images[i], "image without a mask") for i in sorted(images) if i not in masks]
    problems += [(masks[i], "mask without an image") for i in sorted(masks) if i not in images]
    group_file = layout.group_file(files)
    return Discovery(
        layout.name, pairs, problems, group_file, layout.groups[1] if group_file and layout.groups else None
    )


def discover_pairs(
    root: str | Path, layout: str = "auto", mask_suffix: str | None = None, zip_cache: Path | None = None
) -> Discovery:
    """Pair every image with its mask under `root`, by the named layout or the one that pairs the most."""
    root = Path(root)
    if not root.exists():
        raise SkinsegError("data folder not found", root)
    LAYOUTS.check(layout)
    roots = [root] if root.is_dir() else []
    if zip_cache is not None and (root.suffix.lower() == ".zip" or any(root.glob("*.zip"))):
        roots += unpack_zips(root, zip_cache)
    elif root.is_file():
        raise SkinsegError("expected a folder or a .zip file", root)
    files = [f for r in roots for f in _walk_files(r)]
    if not files:
        raise SkinsegError("no files found in the data folder", root)

    candidates = [LAYOUTS[layout]] if layout != "auto" else list(LAYOUTS.values())
    if mask_suffix is not None:
        candidates = [replace(c, mask_suffix=re.escape(mask_suffix)) for c in candidates]
    names = _image_names(files)
    results = [_pair_with(c, files, names) for c in candidates]
    best = max(results, key=lambda d: (len(d.pairs), -len(d.problems)))
    if not best.pairs:
        found_images = sum(1 for f in files if f.suffix.lower() in IMAGE_SUFFIXES)
        raise SkinsegError(
            f"no image/mask pairs found among {len(files)} files ({found_images} images) "
            f"in layout {layout}; expected e.g. images/ + masks/ folders or an ISIC/PH2 layout",
            root,
        )
    return _without_broken_links(best)


def _without_broken_links(found: Discovery) -> Discovery:
    """A pair whose image or mask is a link to nothing (or a link loop) is skipped and reported, like any other
    unreadable pair, instead of stopping the whole run where its file is first touched."""
    broken = [next((f for f in (p.image, p.mask) if not f.exists()), None) for p in found.pairs]
    if not any(broken):
        return found
    pairs = [pair for pair, path in zip(found.pairs, broken, strict=True) if path is None]
    problems = [(path, "a link to nothing, or a link loop") for path in broken if path is not None]
    return replace(found, pairs=pairs, problems=[*found.problems, *problems])
