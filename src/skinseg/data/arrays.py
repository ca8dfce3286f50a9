"""The uint8 arrays of one split of one or more prepared sets, on the training device or memory-mapped."""

from __future__ import annotations

import numpy as np
import torch

from skinseg.data.dataset import PreparedData

IN_MEMORY_SHARE = 0.5  # splits larger than this share of the available memory are read from the cache per batch


class SplitArrays:
    """The uint8 images (N, S, S, 3) and masks (N, S, S) of one split of one or more prepared sets, in order.

    Copied whole to the training device when they take at most IN_MEMORY_SHARE of the available memory;
    larger ones (e.g. 12,000 images at 512 px, 9.4 GB) stay memory-mapped in the caches and each batch is
    read from disk (the OS keeps what fits in its page cache).
    """

    def __init__(self, parts: list[tuple[PreparedData, np.ndarray]], device: torch.device, in_memory: bool):
        self.parts, self.device, self.in_memory = parts, device, in_memory
        self.starts = np.cumsum([0, *(len(rows) for _, rows in parts)])
        self.size = parts[0][0].size
        if in_memory:
            self.images = torch.cat([_rows_to_tensor(prepared.images, rows) for prepared, rows in parts]).to(device)
            self.masks = torch.cat([_rows_to_tensor(prepared.masks, rows) for prepared, rows in parts]).to(device)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def take(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The images and masks of `rows` (positions in this split), on the device."""
        if self.in_memory:
            rows = rows.to(self.device)
            return self.images[rows], self.masks[rows]
        wanted = rows.cpu().numpy()
        part_of = np.searchsorted(self.starts, wanted, side="right") - 1
        images = np.empty((len(wanted), self.size, self.size, 3), np.uint8)
        masks = np.empty((len(wanted), self.size, self.size), np.uint8)
        for k, (prepared, cache_rows) in enumerate(self.parts):
            chosen = np.flatnonzero(part_of == k)
            where = cache_rows[wanted[chosen] - self.starts[k]]
            order = np.argsort(where)  # read the memory map front to back
            images[chosen[order]] = prepared.images[where[order]]
            masks[chosen[order]] = prepared.masks[where[order]]
        return torch.from_numpy(images).to(self.device), torch.from_numpy(masks).to(self.device)


def _rows_to_tensor(array: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    if len(rows) == 0:
        return torch.zeros((0, *array.shape[1:]), dtype=torch.uint8)
    return torch.from_numpy(np.ascontiguousarray(array[rows]))


def available_memory() -> int:
    """Bytes of memory available to this process, as the OS counts it (psutil: Linux, macOS and Windows alike)."""
    import psutil

    return int(psutil.virtual_memory().available)
