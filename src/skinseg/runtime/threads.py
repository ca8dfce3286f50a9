"""Work on many items in a few threads, the results in the items' order; BLAS kept off cores they share."""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_THREADS = 4  # numpy and PIL let go of the GIL for their large steps only: more threads than this win nothing
AHEAD = 2  # items started per thread before the caller takes the first result


def thread_count() -> int:
    """The threads for work that is partly numpy and partly Python: one per core this process may run on, at most
    MAX_THREADS."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_THREADS, cores or 1))


def in_order(function: Callable[[Item], Result], items: Iterable[Item], threads: int) -> Generator[Result]:
    """function(item) for each item, computed in `threads` threads, yielded in the items' order; at most
    AHEAD * threads items are started and not yet taken, so that a long list does not fill the memory. An error
    in function reaches the caller at its item. Leaving early (an error, Ctrl-C, a caller that stops) waits for the
    items being computed and starts no more."""
    if threads <= 1:
        yield from map(function, items)
        return
    pending: deque[Future[Result]] = deque()
    remaining = iter(items)
    with ThreadPoolExecutor(threads, thread_name_prefix="skinseg-work") as pool:
        try:
            for item in remaining:
                pending.append(pool.submit(function, item))
                if len(pending) >= AHEAD * threads:
                    break
            while pending:
                result = pending.popleft().result()
                for item in remaining:  # one started for each one taken
                    pending.append(pool.submit(function, item))
                    break
                yield result
        finally:
            for future in pending:
                future.cancel()


# BLAS's thread count is the process's: the first blas_on_one_thread in sets it, the last out restores it, so that
# overlapping blocks in a caller's threads cannot leave it at one (each restoring what the other had set).
_BLAS_LOCK = threading.Lock()
_BLAS_LIMIT: dict[str, Any] = {"blocks": 0, "limiter": None}


@contextlib.contextmanager
def blas_on_one_thread() -> Iterator[None]:
    """numpy's and scipy's BLAS on one thread while the block runs, where threads of ours (a pool, the model's)
    keep the cores busy. The products in the measurements are small (a few thousand rows by 3 or 8 columns), and
    BLAS's own threads, woken for each, waited for those cores: a 1,024 x 8 by 8 x 80 product took 7.8 ms on a
    loaded 2-core machine, 0.05 ms on one thread. torch's threads are OpenMP's, not BLAS's: left as they are."""
    from threadpoolctl import threadpool_limits

    with _BLAS_LOCK:
        if _BLAS_LIMIT["blocks"] == 0:
            _BLAS_LIMIT["limiter"] = threadpool_limits(limits=1, user_api="blas")
        _BLAS_LIMIT["blocks"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_LIMIT["blocks"] -= 1
            if _BLAS_LIMIT["blocks"] == 0:
                _BLAS_LIMIT["limiter"].restore_original_limits()
                _BLAS_LIMIT["limiter"] = None
