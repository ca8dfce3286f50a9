"""The one exception type of the package: the CLI turns it into one red line and exit code 1."""

from __future__ import annotations

import math
import operator
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


def check_whole_number(name: str, value) -> None:
    """`name` must be an integer, Python's or numpy's (not a bool, not 2.5: a float count failed deep inside
    torch)."""
    try:
        whole = not isinstance(value, bool) and operator.index(value) == value
    except TypeError:
        whole = False
    check_setting(whole, f"`{name}` must be a whole number, got {value!r}")


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
    check_setting(0.0 < threshold < 1.0, f"`threshold` must be between 0 and 1, got {threshold}")


# The smallest per-channel std of a model's input normalisation (0-255 scale: a tenth of a grey level): below it,
# every input is blown up to nonsense. prepare's statistics never go below it, and load_model refuses less.
MIN_NORMALISATION_STD = 0.1

# mm per pixel: a dermoscopy pixel is about 0.01-0.1 mm; far more overflows the areas, far less rounds them to 0
MIN_PIXEL_SIZE, MAX_PIXEL_SIZE = 1e-4, 10.0


def check_pixel_size(pixel_size: float | None) -> None:
    """`pixel_size` (mm per pixel) is None or a number from MIN_PIXEL_SIZE to MAX_PIXEL_SIZE."""
    ok = pixel_size is None or (math.isfinite(pixel_size) and MIN_PIXEL_SIZE <= pixel_size <= MAX_PIXEL_SIZE)
    words = f"a number of mm from {MIN_PIXEL_SIZE:g} to {MAX_PIXEL_SIZE:g}"
    check_setting(ok, f"`pixel_size` must be {words}, got {pixel_size}")


def check_rgb_image(image, name: str = "image") -> None:
    """An image given as an array is uint8 RGB, (height, width, 3), of at least one pixel; anything else is
    refused: converted on the way, a float or 16-bit image gave wrong masks without a word."""
    dtype, shape = getattr(image, "dtype", None), tuple(getattr(image, "shape", ()))
    ok = str(dtype) == "uint8" and len(shape) == 3 and shape[2] == 3 and min(shape[:2]) >= 1
    check_setting(ok, f"`{name}` must be a uint8 RGB array (height, width, 3), got {dtype} {shape}")
