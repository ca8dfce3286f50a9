"""The work of `skinseg prepare` on one image/mask pair, done in its worker processes: both files read once (for
their SHA-256 and their decoding), the pair checked, resized and written into its row of the cache's arrays.

The usual pair (a JPEG image and an 8-bit grey mask, neither turned by EXIF) goes a short way: the image kept in
Pillow (its channel sums from Pillow's histogram), the mask checked by its extrema and one comparison in numpy (a
histogram counts a binary mask's long runs of one value slowly), a mask of twice the size halved in numpy, each
row written with one `pwrite`. It gives the bytes that the general way gives (images.decode_rgb, read_mask_grey,
binarise and resize_mask, which the training cache and every prediction share), without their copies. Any other
pair, and any pair that fails on the short way, goes the general way, which also words the errors.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import typing
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from skinseg.data.images import binarise, decode_rgb, not_binary, read_mask_grey, resize_mask
from skinseg.data.layouts import Pair
from skinseg.errors import SkinsegError
from skinseg.fileio import file_sha256

Job = tuple[int, Pair, int, str, str]  # (row, pair, size, images .npy, masks .npy)
Result = tuple[int, dict | None, tuple[str, str] | None]  # (row, the manifest's item or None, (path, why skipped))

ORIENTATION = 0x0112  # the EXIF tag
TURNED = range(2, 9)  # orientations that ImageOps.exif_transpose turns or flips
_LEVELS = np.arange(256, dtype=np.int64)
_ONES = bytes(128) + bytes([1]) * 128  # resize_mask's "lesion where at least half is lesion": > 127, as 0/1

_outputs: dict[tuple[str, str], tuple[tuple[int, int], tuple[int, int]]] = {}
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def start_worker() -> None:
    """Ready a worker process: the memory of a pair's images kept for the next pair's. glibc's malloc otherwise
    gives each freed image (over 128 KiB) back to the OS and the next one's pages fault in again, zeroed: some
    300 page faults and a fifth of a pair's time. The worker ends with the run, and its memory with it."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc's (elsewhere there is none, or it does nothing)
    except (OSError, AttributeError, TypeError):
        return
    mallopt(M_MMAP_THRESHOLD, 64 * 2**20)
    mallopt(M_TRIM_THRESHOLD, 256 * 2**20)


def _open_outputs(images_path: str, masks_path: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Each output array's file descriptor and the offset of its data, opened once per process."""
    key = (images_path, masks_path)
    if key not in _outputs:
        close_outputs()
        images, masks = ((os.open(path, os.O_WRONLY), int(np.load(path, mmap_mode="r").offset)) for path in key)
        _outputs[key] = (images, masks)
    return _outputs[key]


def close_outputs() -> None:
    """Close the output arrays this process opened (the last pair is written); folders resolved anew next time."""
    for (images_fd, _), (masks_fd, _) in _outputs.values():
        os.close(images_fd)
        os.close(masks_fd)
    _outputs.clear()
    _resolved_folder.cache_clear()


def process_pair(job: Job) -> Result:
    """Decode, check and resize one pair into row `index` of the output arrays."""
    index, pair, size, images_path, masks_path = job
    try:
        files = (pair.image, pair.mask)  # a FIFO or a folder is no file to read: the general way says so
        read = (files[0].read_bytes(), files[1].read_bytes()) if all(f.is_file() for f in files) else None
        quick = _quick(read, size) if read else None
    except Exception:  # anything unusual goes the general way, which says what is wrong
        read, quick = None, None
    if read is None or quick is None:
        return _general(job)
    (rgb, original, histogram), (grey, levels, top) = quick
    problem = _mask_problem(grey.size, original, levels)
    if problem:
        return index, None, (str(pair.mask), problem)
    (images_fd, images_offset), (masks_fd, masks_offset) = _open_outputs(images_path, masks_path)
    _write_at(images_fd, rgb, images_offset + index * len(rgb))
    _write_at(masks_fd, _reduced_mask(grey, levels, top, size), masks_offset + index * size * size)
    hashes = (hashlib.sha256(read[0]).hexdigest(), hashlib.sha256(read[1]).hexdigest())
    return index, _item(pair, original, hashes, histogram), None


def _write_at(fd: int, data: bytes, offset: int) -> None:
    """All of `data` written at `offset` of the file."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _quick(read: tuple[bytes, bytes], size: int) -> tuple[tuple, tuple] | None:
    """The usual pair's image (its size x size RGB bytes, own (width, height), 768-bin histogram) and mask (8-bit
    grey, its grey values, where it has two the pixels of the higher), or None for a pair that goes the general
    way."""
    image = _opened(read[0])
    if image.format != "JPEG":
        return None
    original = image.size
    image.draft("RGB", (size, size))
    if image.mode != "RGB" or image.getexif().get(ORIENTATION, 1) in TURNED:
        return None
    if image.size != (size, size):  # images.resize_rgb
        image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    rgb = (image.tobytes(), original, image.histogram())
    grey = _opened(read[1])
    grey.load()
    if grey.mode != "L" or grey.getexif().get(ORIENTATION, 1) in TURNED:
        return None
    levels = _levels(grey)
    return (rgb, (grey, *levels)) if levels else None


def _levels(grey: Image.Image) -> tuple[list[int], np.ndarray | None] | None:
    """The grey values of a mask that has at most two (found without a histogram, which counts a binary mask's
    long runs of one value slowly) and, where it has two, where it has the higher (H, W); None where it has more."""
    low, high = typing.cast(tuple[int, int], grey.getextrema())  # an 8-bit grey image's
    if low == high:
        return [low], None
    values = np.frombuffer(grey.tobytes(), np.uint8).reshape(grey.height, grey.width)
    top = values == high
    others = np.count_nonzero(values) if low == 0 else values.size - np.count_nonzero(values == low)  # than low
    return ([low, high], top) if others == np.count_nonzero(top) else None


def _opened(data: bytes) -> Image.Image:
    """An image opened from its bytes; Pillow's decompression-bomb warning an error, as images._open has it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))


def _mask_problem(mask_size: tuple[int, int], original: tuple[int, int], levels: list[int]) -> str | None:
    """Why a mask whose grey values are `levels` cannot be used with its image, or None (the general way's
    checks, in its order, on a mask of at most two grey values; a 0/1 mask is read as 0/255)."""
    if mask_size != original:
        return f"mask is {mask_size[0]}x{mask_size[1]} but its image is {original[0]}x{original[1]}"
    if not any(_lesion(level, levels) for level in levels):
        return "empty mask (no lesion pixels)"
    return None


def _lesion(level: int, levels: list[int]) -> bool:
    """Whether grey `level` of a mask whose grey values are `levels` is lesion: > 128 (binarise), once a 0/1 mask
    is scaled to 0/255 (read_mask_grey)."""
    return level * 255 > 128 if levels[-1] <= 1 else level > 128


def _reduced_mask(grey: Image.Image, levels: list[int], top: np.ndarray | None, size: int) -> bytes:
    """The mask binarised (> 128, a 0/1 mask read as 0/255) and resized as resize_mask does, as 0/1 bytes."""
    halved = top is not None and grey.size == (2 * size, 2 * size)
    if halved and not _lesion(levels[0], levels) and _lesion(levels[1], levels):
        # Pillow's 2x2 reduce of the 0/255 mask, (sum + 2) >> 2 > 127: where two or more of the four are lesion
        ones = typing.cast(np.ndarray, top).view(np.uint8)
        blocks = ones[0::2, 0::2] + ones[0::2, 1::2]
        blocks += ones[1::2, 0::2]
        blocks += ones[1::2, 1::2]
        return (blocks >= 2).tobytes()
    lesion = [255 if _lesion(level, levels) else 0 for level in range(256)]
    if any(lesion[level] != level for level in levels):
        grey = grey.point(lesion)
    width, height = grey.size
    if width % size == 0 and height % size == 0 and width // size == height // size:
        grey = grey.reduce(width // size)
    else:
        grey = grey.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return grey.tobytes().translate(_ONES)


def _item(pair: Pair, original: tuple[int, int], hashes: tuple[str, str], histogram: list[int]) -> dict:
    """The manifest's item for a pair, with its image's channel sums for the normalisation."""
    counts = np.asarray(histogram, dtype=np.int64).reshape(3, 256)  # sums of integers: exact in any order
    return {
        "id": pair.id,
        "image": _resolved(pair.image),  # absolute: the manifest is read from any working folder
        "mask": _resolved(pair.mask),
        "original_size": list(original),
        "sha256": hashes[0],
        "mask_sha256": hashes[1],  # with the image's: what the cache holds (PreparedData.fingerprint)
        "channel_sum": [float(v) for v in counts @ _LEVELS],
        "channel_sq_sum": [float(v) for v in counts @ _LEVELS**2],
    }


def _resolved(path: Path) -> str:
    """`path.resolve()`, its folder resolved once for all the files in it (a linked file resolved itself)."""
    if os.path.islink(path):
        return str(path.resolve())
    return os.path.join(_resolved_folder(os.getcwd(), path.parent), path.name)


@functools.lru_cache(maxsize=256)
def _resolved_folder(working_folder: str, folder: Path) -> str:
    """A folder resolved (a relative one from `working_folder`, the process's working folder)."""
    return str((working_folder / folder).resolve())


def _general(job: Job) -> Result:
    """The pair decoded by the functions of skinseg.data.images, whatever its formats; their errors as reasons."""
    index, pair, size, images_path, masks_path = job
    try:
        image, original = decode_rgb(pair.image, size)
        grey = read_mask_grey(pair.mask)
        mask = binarise(grey)
    except SkinsegError as exc:
        return index, None, (str(exc.path or pair.image), str(exc).removeprefix(f"{exc.path}: "))
    except Exception as exc:  # a decoder failing in an unforeseen way must not stop the batch
        return index, None, (str(pair.image), f"unreadable ({type(exc).__name__}: {exc})")
    problem = None
    if mask.shape[::-1] != original:
        problem = f"mask is {mask.shape[1]}x{mask.shape[0]} but its image is {original[0]}x{original[1]}"
    elif (levels_problem := not_binary(grey)) is not None:
        problem = levels_problem
    elif not mask.any():
        problem = "empty mask (no lesion pixels)"
    if problem:
        return index, None, (str(pair.mask), problem)
    (images_fd, images_offset), (masks_fd, masks_offset) = _open_outputs(images_path, masks_path)
    _write_at(images_fd, np.ascontiguousarray(image).tobytes(), images_offset + index * image.nbytes)
    reduced = resize_mask(mask, size).astype(np.uint8)
    _write_at(masks_fd, reduced.tobytes(), masks_offset + index * reduced.nbytes)
    histogram = [int(count) for c in range(3) for count in np.bincount(image[..., c].ravel(), minlength=256)]
    return index, _item(pair, original, (file_sha256(pair.image), file_sha256(pair.mask)), histogram), None
