"""A prepared cache's .npy arrays as files on a disk that may fill up: the room they need checked before anything
is written, their blocks allocated when they are made (a full disk is then an OSError at once, never a SIGBUS
from a memory-mapped page later, in this process or a worker), a failed write one line naming the file, and the
rows of skipped pairs dropped in place (no second copy, so no more room than was checked)."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from skinseg.errors import SkinsegError

CHANNELS = 4  # bytes per pixel of a cache: an RGB image and its mask
MANIFEST_ROOM = 4096  # the manifest's fixed part and the two arrays' headers, in bytes
MANIFEST_ITEM_ROOM = 1024  # a manifest item (two absolute paths, a SHA-256, a split), in bytes; generous


def cache_bytes(count: int, size: int) -> int:
    """The bytes a cache of `count` pairs at `size` px takes on disk: its arrays and its manifest."""
    return count * (size * size * CHANNELS + MANIFEST_ITEM_ROOM) + MANIFEST_ROOM


def _amount(count: int) -> str:
    return f"{count / 2**30:.2f} GiB" if count >= 2**30 else f"{count / 2**20:.2f} MiB"


def check_room(folder: Path, count: int, size: int) -> None:
    """Refuse, before anything is written, a cache that the disk under `folder` has no room for. The new arrays
    are written beside the old cache, which stays whole until they are complete, so they need all of it."""
    needed = cache_bytes(count, size)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:  # no answer: the writes themselves say it if the disk fills up
        return
    if needed > free:
        raise SkinsegError(
            f"not enough free space: {count} image/mask pairs at {size}x{size} px need {needed} bytes"
            f" ({_amount(needed)}) for the prepared arrays, the disk has {free} bytes ({_amount(free)}) free",
            folder,
        )


@contextlib.contextmanager
def writing(name: Path) -> Iterator[None]:
    """An OSError (a full disk) while the file `name` (or its temporary) is written: one line naming it."""
    try:
        yield
    except OSError as exc:
        raise SkinsegError(f"could not write file: {exc.strerror or exc}", name) from None


NOT_SUPPORTED = (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)  # a filesystem that cannot preallocate


def allocate(path: Path, shape: tuple[int, ...], name: Path) -> None:
    """An empty uint8 .npy of `shape` at `path`, its blocks allocated on the disk where the OS can (a full disk
    raises here, not as a SIGBUS when a memory map writes a page the disk has no room for). `name`: the file it
    becomes, named in an error."""
    with writing(name):
        array = np.lib.format.open_memmap(path, "w+", np.uint8, shape)
        start = array.offset  # the data's, after the header
        array.flush()
        del array
        with open(path, "r+b") as handle:
            end = os.fstat(handle.fileno()).st_size
            try:
                os.posix_fallocate(handle.fileno(), start, end - start)
                return
            except AttributeError:  # no posix_fallocate (macOS, Windows)
                pass
            except OSError as exc:
                if exc.errno not in NOT_SUPPORTED:
                    raise
            _write_zeros(handle, start, end)


def _write_zeros(handle: BinaryIO, start: int, end: int, chunk: int = 64 * 2**20) -> None:
    """Allocate the blocks of a file's bytes `start` to `end` (zeros already) by writing them, where the OS
    cannot preallocate them."""
    zeros = bytes(min(chunk, end - start))
    handle.seek(start)
    while start < end:
        start += handle.write(zeros[: end - start])
    handle.flush()


def keep_rows(path: Path, keep: list[int], name: Path) -> None:
    """Keep only the rows `keep` (ascending) of the .npy at `path`, in place: the kept rows moved forward, the
    header rewritten for the new count (numpy pads it so that it keeps its length), the file cut short."""
    with writing(name):
        array = np.load(path, mmap_mode="r+")
        for new, old in enumerate(keep):
            if new != old:
                array[new] = array[old]
        array.flush()
        header_data = np.lib.format.header_data_from_array_1_0(array)
        offset, row_bytes = array.offset, array[0].nbytes if len(array) else 0
        del array
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, header_data | {"shape": (len(keep), *header_data["shape"][1:])})
        if len(header.getvalue()) != offset:  # a header of another length: a copy instead
            np.save(path.with_suffix(".copy.npy"), np.load(path, mmap_mode="r")[: len(keep)])
            os.replace(path.with_suffix(".copy.npy"), path)
            return
        with open(path, "r+b") as handle:
            handle.write(header.getvalue())
            handle.truncate(offset + row_bytes * len(keep))
