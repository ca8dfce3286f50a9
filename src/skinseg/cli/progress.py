"""Rich progress displays that library functions report into through plain callbacks (reporting.callbacks)."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

LOG_EVERY = 60.0  # seconds between progress lines written to a log file


class _Progress(Progress):
    failed = False  # set when the block failed: its bars vanish, so the error is the only line printed

    def stop(self) -> None:
        if not self.failed:
            super().stop()
            return
        for task in self.tasks:
            self.update(task.id, visible=False)
        self.live.transient = True
        self.live.stop()  # not Progress.stop, which adds an empty line on a non-interactive console


def _progress(console: Console) -> _Progress:
    return _Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@contextlib.contextmanager
def _shown(console: Console) -> Iterator[Progress]:
    """A running Progress whose bars vanish if the block fails, so an error stays the only line printed."""
    with _progress(console) as progress:
        try:
            yield progress
        except BaseException:
            progress.failed = True
            raise


@contextlib.contextmanager
def progress_bar(console: Console, description: str) -> Iterator[Callable[..., None]]:
    """Yields advance(done, total, info=""): `info` is shown beside the count."""
    with _shown(console) as progress:
        task = progress.add_task(description, total=None, info="")

        def advance(done: int, total: int, info: str = "") -> None:
            progress.update(task, completed=done, total=total, info=info)

        yield advance


@contextlib.contextmanager
def lazy_bar(console: Console, description: str) -> Iterator[Callable[..., None]]:
    """Yields advance(done, total, info="") for a library call: the bar appears at its first call, when the work
    begins (a call that fails before, loading the model or checking its files, prints its error alone; one with
    nothing to do, such as a prepare whose cache is up to date, draws none)."""
    with contextlib.ExitStack() as stack:
        shown: list[Callable[..., None]] = []

        def advance(done: int, total: int, info: str = "") -> None:
            if not shown:
                shown.append(stack.enter_context(progress_bar(console, description)))
            shown[0](done, total, info)

        yield advance


def notes_printer(console: Console) -> Callable[[Sequence[str]], None]:
    """on_notes for a library call: each note one yellow line."""
    from skinseg.cli.tables import print_notes

    return functools.partial(print_notes, console)


@contextlib.contextmanager
def training_display(console: Console, epochs: int | None, first_epoch: int = 1) -> Iterator[tuple[Callable, Callable]]:
    """Yields (on_step, on_epoch): a bar over the steps of the epoch with the live loss and training Dice, and
    a line per epoch (with each data set's validation Dice when there are several). `epochs`: None for a run
    on a time budget. Where the console is not a terminal (a log file), the bar cannot redraw: a plain line
    every LOG_EVERY seconds says where the epoch stands instead. `first_epoch`: where a resumed run goes on."""
    with _shown(console) as progress:
        task = progress.add_task(f"epoch {first_epoch}", total=None, info="")
        state: dict[str, Any] = {"epoch": first_epoch, "loss": None, "logged": time.monotonic()}

        def on_step(step: int, steps: int, loss: float, dice: float) -> None:
            state["loss"] = loss if state["loss"] is None else 0.9 * state["loss"] + 0.1 * loss
            if not console.is_terminal and time.monotonic() - state["logged"] >= LOG_EVERY:
                state["logged"] = time.monotonic()
                console.print(
                    f"epoch {state['epoch']} step {step}/{steps}  loss {state['loss']:.4f}  Dice {dice:.4f}",
                    highlight=False,
                )
            progress.update(
                task,
                description=f"epoch {state['epoch']}" + (f"/{epochs}" if epochs else ""),
                completed=step,
                total=steps,
                info=f"loss {state['loss']:.4f}  Dice {dice:.4f}",
            )

        def on_epoch(row: dict) -> None:
            progress.console.print(
                f"epoch {row['epoch']:>3}  train loss {row['train_loss']:.4f}  Dice {row['train_dice']:.4f}  |  "
                f"val loss {row['val_loss']:.4f}  Dice {row['val_dice']:.4f}  acc {row['val_accuracy']:.4f}  "
                f"lr {row['lr']:.2e}  {row['seconds']:.1f}s"
                + "".join(
                    f"  {k.removeprefix('val_dice_')} {v:.4f}" for k, v in row.items() if k.startswith("val_dice_")
                ),
                highlight=False,
            )
            state["epoch"] = row["epoch"] + 1
            state["loss"] = None  # the bar shows the finished epoch until the next one's first step

        yield on_step, on_epoch
