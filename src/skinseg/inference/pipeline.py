"""Images through the model without gaps: the next batch is decoded in threads, and the model computes it in a
thread of its own, while the caller post-processes and writes the last one (segment, measure)."""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skinseg.data.images import load_rgb
from skinseg.errors import SkinsegError
from skinseg.inference.postprocess import import_ndimage, needs_ndimage
from skinseg.inference.segmenter import Segmenter
from skinseg.runtime.threads import thread_count


@dataclass
class Decoded:
    """One input image as the model reads it, its (height, width), and the whole image where an output needs
    it (an overlay, a report)."""

    model_input: np.ndarray
    shape: tuple[int, int]
    image: np.ndarray | None


def _read(source: Path, segmenter: Segmenter, whole: bool) -> tuple[Path, Decoded | None, str | None]:
    try:
        model_input, shape = segmenter.read(source)
        return source, Decoded(model_input, shape, load_rgb(source) if whole else None), None
    except SkinsegError as exc:
        return source, None, str(exc).removeprefix(f"{source}: ")


def segmented_images(segmenter: Segmenter, sources: list[Path], batch_size: int, whole: bool, failed: list):
    """(source, image or None, probability, mask, seconds per image) for each readable image of `sources`, in
    batches of `batch_size`. While the caller handles one batch (its masks and files), the model computes the next
    in a thread and the one after is decoded. `whole`: the whole image is read too. Unreadable images go to
    `failed` as (path, reason)."""
    pool = ThreadPoolExecutor(thread_count())
    if needs_ndimage(segmenter.postprocess, bool(segmenter.info.boundary_offset)):
        pool.submit(import_ndimage)  # while the first batch is decoded and computed
    with pool, _one_ahead(_probabilities(segmenter, sources, batch_size, whole, failed, pool)) as computed:
        for ready, probs, seconds in computed:
            masks = segmenter.masks_from(probs)
            for (source, decoded), prob, mask in zip(ready, probs, masks, strict=True):
                yield source, decoded.image, prob, mask, seconds


def _probabilities(segmenter: Segmenter, sources: list[Path], batch_size: int, whole: bool, failed: list, pool):
    """(the batch's readable images, their probability maps, seconds per image) for each batch; the next batch
    is decoded in `pool` while the model works on this one."""
    batches = [sources[i : i + batch_size] for i in range(0, len(sources), batch_size)]
    read = functools.partial(_read, segmenter=segmenter, whole=whole)
    pending = pool.map(read, batches[0]) if batches else iter(())
    for index in range(len(batches)):
        decoded = list(pending)
        if index + 1 < len(batches):
            pending = pool.map(read, batches[index + 1])
        started = time.perf_counter()
        ready = [(s, d) for s, d, _ in decoded if d is not None]
        failed += [(s, error or "unreadable") for s, d, error in decoded if d is None]
        probs = segmenter.probabilities_of([d.model_input for _, d in ready], [d.shape for _, d in ready])
        yield ready, probs, (time.perf_counter() - started) / max(1, len(ready))


_DONE = object()


@contextlib.contextmanager
def _one_ahead(items: Iterator) -> Iterator[Iterator]:
    """Iterate over `items` in a thread of its own, one item ahead of the caller. Its errors reach the caller;
    leaving the block (an error, Ctrl-C, a caller that stops early) stops it after the item it is computing."""
    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                ready.put(entry, timeout=0.1)
                return True
        return False

    def run() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as exc:  # handed to the caller, who raises it
            put((None, exc))

    def results() -> Iterator:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item

    thread = threading.Thread(target=run, name="skinseg-model", daemon=True)
    thread.start()
    try:
        yield results()
    finally:
        stop.set()
        thread.join()
