"""The model's thread of inference.pipeline (issue #35): results in order, its errors raised in the caller, and
nothing left running when the caller stops."""

from __future__ import annotations

import threading

import pytest

from skinseg.errors import SkinsegError
from skinseg.inference.pipeline import _one_ahead


def test_items_come_in_order_computed_one_ahead_in_another_thread():
    threads = []

    def items():
        for index in range(5):
            threads.append(threading.current_thread().name)
            yield index

    with _one_ahead(items()) as computed:
        assert list(computed) == [0, 1, 2, 3, 4]
    assert set(threads) == {"skinseg-model"}


def test_an_error_in_the_thread_is_raised_in_the_caller():
    def items():
        yield 1
        raise SkinsegError("the ONNX graph gave an output of shape (1, 3, 8, 8)")

    with pytest.raises(SkinsegError, match="ONNX graph"), _one_ahead(items()) as computed:
        assert next(computed) == 1
        next(computed)


def test_a_caller_that_stops_early_stops_the_thread():
    made = []

    def items():
        for index in range(1000):
            made.append(index)
            yield index

    with pytest.raises(KeyboardInterrupt), _one_ahead(items()) as computed:
        next(computed)
        raise KeyboardInterrupt
    assert len(made) <= 3  # the one handed over, the one queued, the one being computed
    assert not any(thread.name == "skinseg-model" for thread in threading.enumerate())
