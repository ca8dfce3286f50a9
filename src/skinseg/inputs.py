"""Which files `skinseg segment` reads and which it writes. Kept free of torch, so that the command reports a
wrong path at once instead of after seconds of imports."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from skinseg.data.images import IMAGE_SUFFIXES, MASK_FORMATS
from skinseg.data.layouts import MASK_SUFFIXES
from skinseg.errors import SkinsegError
from skinseg.fileio import real_path
from skinseg.registry import spoken

MASK_SUFFIX = "_segmentation.png"

# What segment adds to an image's stem for the pictures it writes beside a mask (<stem>_overlay.png,
# <stem>_probability.png) and in its crops folder (<stem>_crop.png): neither images to segment nor masks. Written,
# recognised and named in messages from here.
OVERLAY, PROBABILITY, CROP = "_overlay", "_probability", "_crop"
EXTRA_OUTPUTS = re.compile(rf"(?:{'|'.join((OVERLAY, PROBABILITY, CROP))})$", re.I)
# The names a given mask may have, in words (mask_files_by_id pairs them).
MASK_NAMES = spoken([f"<id>{suffix}.png" for suffix in MASK_SUFFIXES.split("|")] + ["<id>.png"])
# The endings of file names that an input folder's listing leaves out, in words.
NOT_INPUT_ENDINGS = spoken([*MASK_SUFFIXES.split("|"), OVERLAY, PROBABILITY, CROP])
# Files in an input folder that are masks or this command's own outputs, not images to segment.
_NOT_INPUTS = re.compile(rf"(?:{MASK_SUFFIXES})$|{EXTRA_OUTPUTS.pattern}", re.I)
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp", ".gif")
# The names of the files segment writes into a folder of masks (masks, overlays, probability maps).
OUTPUT_NAMES = re.compile(rf"(?:{re.escape(MASK_SUFFIX)}|(?:{OVERLAY}|{PROBABILITY})\.png)$")


def collect_inputs(
    inputs: tuple[Path, ...] | list[Path],
    ignored: list[Path] | None = None,
    repeated: list[tuple[Path, Path]] | None = None,
    named_like_outputs: list[Path] | None = None,
) -> list[Path]:
    """Image files from files, folders (not recursive) and glob patterns, in order, each file once (by its real
    path; each repeat goes to `repeated` with the input it repeats). In a folder or a pattern, mask files
    (<id>_segmentation, _mask, _lesion) and segment's overlays and probability maps are left out (and added to
    `ignored`): `segment DIR -o DIR` (or `'DIR/*.png'`) run twice does not take its own masks as inputs. A file
    named on its own is always an input; one named as those are goes to `named_like_outputs` too (a pattern
    that the shell expanded arrives as files named one by one)."""
    found: list[Path] = []
    named_one_by_one: set[int] = set()  # found's files that were named on their own, by id
    for item in inputs:
        if item.is_dir():
            with os.scandir(item) as entries:  # names and types without a stat per file: folders of 10000s
                names = sorted(
                    entry.name
                    for entry in entries
                    if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
                    and not entry.name.startswith(".")
                    and not _is_dir(entry)
                )
            _images_only([item / name for name in names], found, ignored)
        elif item.exists():
            found.append(item)
            named_one_by_one.add(id(item))
        elif any(ch in str(item) for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(item)) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
            _images_only(matches, found, ignored)
        else:
            raise SkinsegError("input not found", item)
    folders: dict[str, str] = {}
    first: dict[str, Path] = {}  # one input per file, however it is named: DIR and $PWD/DIR are one folder
    for path in found:
        kept = first.setdefault(real_path(path, folders), path)
        if kept is not path and repeated is not None:
            repeated.append((path, kept))
    unique = list(first.values())
    if not unique:
        raise SkinsegError(f"no images found in {', '.join(str(i) for i in inputs)}")
    if named_like_outputs is not None:
        named_like_outputs.extend(p for p in unique if id(p) in named_one_by_one and named_like_output(p))
    return unique


def named_like_output(path: Path) -> bool:
    """Whether a file is named as a mask or one of segment's own outputs is (a folder's or a pattern's files
    so named are left out; one named on its own is an input all the same)."""
    return _NOT_INPUTS.search(path.stem) is not None


def _images_only(paths: list[Path], found: list[Path], ignored: list[Path] | None) -> None:
    """`paths` to `found`, but masks and segment's own outputs to `ignored` (where it is kept)."""
    for path in paths:
        if not named_like_output(path):
            found.append(path)
        elif ignored is not None:
            ignored.append(path)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link loop: not a folder (the image read reports it)
        return False


def output_paths(inputs: list[Path], output: Path) -> list[Path]:
    """One input and an output named .png, .tif or .bmp: that file, in that format. Otherwise a folder of
    <stem>_segmentation.png. A lossy suffix (.jpg, .webp, .gif) is refused: it would not hold a binary mask."""
    suffix = output.suffix.lower()
    if not output.is_dir() and suffix in LOSSY_SUFFIXES:
        raise SkinsegError(
            f"a mask cannot be saved as {suffix} (it would not stay 0/255); name it .png, .tif or .bmp", output
        )
    if suffix in MASK_FORMATS and not output.is_dir():
        if len(inputs) == 1:
            return [output]
        raise SkinsegError(f"names one mask file, but there are {len(inputs)} images: give a folder", output)
    if len(inputs) == 1 and suffix and not output.is_dir():
        raise SkinsegError(
            f"a mask is written as .png, .tif or .bmp, not {suffix}: name the file so, or give a folder (one that"
            " exists, or a name without a suffix)",
            output,
        )
    if output.exists() and not output.is_dir():
        raise SkinsegError("output must be a folder when segmenting several images", output)
    return [output / f"{path.stem}{MASK_SUFFIX}" for path in inputs]


def one_input_per_mask(pairs: list[tuple[Path, Path]]) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """(image, mask) pairs where two images would write one mask (`good.jpg` and `good.png`): the first keeps
    it, the others are skipped, each with the reason."""
    first: dict[Path, Path] = {}
    kept, skipped = [], []
    for source, target in pairs:
        if first.setdefault(target, source) is source:
            kept.append((source, target))
        else:
            skipped.append((source, f"its mask {target.name} is {first[target]}'s: rename one to segment both"))
    return kept, skipped


def mask_files_by_id(folder: Path) -> dict[str, Path]:
    """The masks in a folder by image id (`<id>_segmentation.png`, `_mask`, `_lesion`, or the id alone), as the
    official scorer pairs them; segment's overlays, probability maps and crops beside them are no masks. Where a
    folder holds both `<id>.png` and `<id>_segmentation.png` (images and masks side by side), the suffixed file
    is the mask."""
    if not folder.is_dir():
        raise SkinsegError("folder not found", folder)
    found: dict[str, Path] = {}
    suffixed: set[str] = set()
    for path in sorted(folder.iterdir()):
        picture = path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
        if not picture or EXTRA_OUTPUTS.search(path.stem):
            continue
        image_id = re.sub(rf"(?:{MASK_SUFFIXES})$", "", path.stem, flags=re.I)
        named_as_mask = image_id != path.stem
        if image_id in found and (named_as_mask == (image_id in suffixed)):
            raise SkinsegError(f"two masks for {image_id}: {found[image_id].name} and {path.name}", folder)
        if image_id not in found or named_as_mask:
            found[image_id] = path
            suffixed.update([image_id] if named_as_mask else [])
    return found


def picture_path(folder: Path, source: Path, suffix: str) -> Path:
    """Where segment writes the picture `suffix` (OVERLAY, PROBABILITY, CROP) of image `source`, in `folder`."""
    return folder / f"{source.stem}{suffix}.png"
