"""The one exception type of the package: the CLI turns it into one red line and exit code 1."""

from __future__ import annotations

from pathlib import Path


class SkinsegError(Exception):
    """A problem with the user's data, files or settings, worded for the user."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


class TrainingInterrupted(SkinsegError):
    """Ctrl-C or SIGTERM during training: the state of the last finished epoch is on disk (exit code 130)."""


class ConfigError(SkinsegError, ValueError):
    """A setting out of its range or not among its choices."""


def check_setting(ok: bool, message: str) -> None:
    """Raise ConfigError(message) unless `ok`: the one way a config refuses a value."""
    if not ok:
        raise ConfigError(message)
