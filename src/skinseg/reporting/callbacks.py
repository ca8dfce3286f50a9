"""The plain callbacks through which the library reports a long job; the command line draws them (cli.progress)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

Progress = Callable[[int, int], None]  # on_progress(done, total)
Notes = Callable[[Sequence[str]], None]  # on_notes(notes): settings asked for but ignored or emulated


def no_progress(done: int, total: int) -> None:
    """The progress callback of a caller that asked for none."""


def no_notes(notes: Sequence[str]) -> None:
    """The notes callback of a caller that asked for none."""
