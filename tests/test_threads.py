"""runtime.threads.in_order: results in the items' order, a bounded number started ahead, errors at their item."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from skinseg.runtime.threads import AHEAD, MAX_THREADS, blas_on_one_thread, in_order, thread_count


def test_results_come_in_the_items_order_whatever_order_they_finish_in():
    def slow_first(n: int) -> int:
        time.sleep(0.02 if n % 3 == 0 else 0.0)
        return n * n

    assert list(in_order(slow_first, range(20), threads=3)) == [n * n for n in range(20)]
    assert list(in_order(slow_first, range(5), threads=1)) == [0, 1, 4, 9, 16]


def test_no_more_than_ahead_per_thread_are_started_before_the_first_is_taken():
    started: list[int] = []
    lock = threading.Lock()

    def record(n: int) -> int:
        with lock:
            started.append(n)
        return n

    results = in_order(record, range(100), threads=2)
    assert next(results) == 0
    time.sleep(0.05)
    assert len(started) <= AHEAD * 2 + 1
    results.close()  # leaving early starts no more
    count = len(started)
    time.sleep(0.05)
    assert len(started) == count < 100


def test_an_error_reaches_the_caller_at_its_item():
    def fails_at_three(n: int) -> int:
        if n == 3:
            raise ValueError("three")
        return n

    taken = []
    with pytest.raises(ValueError, match="three"):
        for value in in_order(fails_at_three, range(10), threads=2):
            taken.append(value)
    assert taken == [0, 1, 2]


def test_one_thread_per_core_up_to_the_limit(monkeypatch):
    for cores, expected in ((2, 2), (1, 1), (64, MAX_THREADS)):
        monkeypatch.setattr("os.sched_getaffinity", lambda _, n=cores: set(range(n)), raising=False)
        monkeypatch.setattr("os.cpu_count", lambda n=cores: n)
        assert thread_count() == expected
    monkeypatch.delattr("os.sched_getaffinity", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: None)
    assert thread_count() == 1


def blas_threads() -> list[int]:
    """The thread count of each BLAS library loaded (numpy's, scipy's)."""
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


@contextlib.contextmanager
def blas_on_two_threads():
    """BLAS on two threads, as outside the tests (conftest's OMP_NUM_THREADS=1 sets OpenBLAS to one too)."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    np.ones((2, 2)) @ np.ones((2, 2))  # numpy's BLAS is loaded
    with threadpool_limits(limits=2, user_api="blas"):
        if set(blas_threads()) != {2}:
            pytest.skip("no BLAS library here that threadpoolctl can give two threads")
        yield


def test_blas_runs_on_one_thread_in_the_block_and_as_before_after_it():
    with blas_on_two_threads():
        with blas_on_one_thread():
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {2}


def test_overlapping_blocks_restore_blas_when_the_last_ends():
    """A review: each block restored what it found when it began, so blocks of two threads that overlap (A in, B
    in, A out, B out) left BLAS on one thread for good. The same order, in one thread:"""
    with blas_on_two_threads():
        first, second = blas_on_one_thread(), blas_on_one_thread()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert set(blas_threads()) == {1}  # the second block is still running
        second.__exit__(None, None, None)
        assert set(blas_threads()) == {2}
