"""The one exception type of the package: the CLI turns it into one red line and exit code 1."""

from __future__ import annotations

import math
from pathlib import Path


class SkinsegError(Exception):
    """A problem with the user's data, files or settings, worded for the user. A setting is named as its field,
    in backticks (`batch_size`, `postprocess=False`): the command line names its flag there (cli.flags)."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


class Interrupted(SkinsegError):
    """Ctrl-C or SIGTERM: what was finished is whole on disk, and the message says how to go on (exit code 130)."""


class TrainingInterrupted(Interrupted):
    """Ctrl-C or SIGTERM during training: the state of the last finished epoch is on disk (exit code 130)."""


class ConfigError(SkinsegError, ValueError):
    """A setting out of its range or not among its choices."""


def check_setting(ok: bool, message: str) -> None:
    """Raise ConfigError(message) unless `ok`: the one way a config refuses a value."""
    if not ok:
        raise ConfigError(message)


def check_finite(name: str, value: float) -> None:
    """`name` must be a number, not inf or nan (inf passes a lower bound, and nan every comparison's negation)."""
    check_setting(math.isfinite(value), f"`{name}` must be a finite number, got {value}")


def check_at_least(name: str, value: float, low: float) -> None:
    """`name` must be a finite number >= `low`."""
    check_finite(name, value)
    check_setting(value >= low, f"`{name}` must be >= {low}, got {value}")


def check_above(name: str, value: float, low: float) -> None:
    """`name` must be a finite number > `low`."""
    check_finite(name, value)
    check_setting(value > low, f"`{name}` must be > {low}, got {value}")


def check_between(name: str, value: float, low: float, high: float) -> None:
    """`name` must be between `low` and `high`, both included."""
    check_setting(low <= value <= high, f"`{name}` must be between {low} and {high}, got {value}")


MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 4096  # the side, in pixels, that images are resized to for training


def check_image_size(size: int, name: str = "size") -> None:
    check_between(name, size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)


def check_threshold(threshold: float) -> None:
    """A probability threshold: strictly between 0 and 1."""
    check_setting(0.0 < threshold < 1.0, f"threshold must be between 0 and 1, got {threshold}")
