"""The commands of `skinseg`, in the order `--help` lists them, and the one way they are put together.

`skinseg` itself builds only the command it runs: building the others cost Typer a tenth of a second and their
modules' imports, in every command (a cold one-image segment is about 2.5 s). `skinseg.cli.app` has them all.
"""

from __future__ import annotations

import functools
import gc
import importlib
import signal
import sys

import typer
from typer.core import TyperCommand

from skinseg.cli.base import ChoicesCommand, MetavarCommand, claim_process, new_app

# name -> its Typer command class; each is the function of that name in skinseg.cli.<name>
COMMANDS: dict[str, type[TyperCommand]] = {
    "prepare": ChoicesCommand,
    "train": TyperCommand,
    "evaluate": TyperCommand,
    "segment": MetavarCommand,
    "measure": MetavarCommand,
    "export": MetavarCommand,
    "adapt": TyperCommand,
}


@functools.cache
def build_app(names: tuple[str, ...] = tuple(COMMANDS)) -> typer.Typer:
    """The `skinseg` group with the commands `names`."""
    app = new_app()
    for name in names:
        module = importlib.import_module(f"skinseg.cli.{name}")
        app.command(cls=COMMANDS[name])(getattr(module, name))
    return app


def main() -> None:
    """The `skinseg` command. A command named first on the line is built alone; anything else (`--help`,
    `--version`, a mistyped name) gets every command, so that help and errors list them all."""
    # Ctrl-C and SIGTERM end a command alike: temporary files are removed, training state is kept, exit 130.
    from skinseg.fileio import raise_interrupt

    signal.signal(signal.SIGINT, raise_interrupt)
    signal.signal(signal.SIGTERM, raise_interrupt)
    claim_process()
    first = sys.argv[1] if len(sys.argv) > 1 else None
    app = build_app((first,) if first in COMMANDS else tuple(COMMANDS))
    try:
        app(prog_name="skinseg")
    finally:
        # At exit the interpreter's last garbage collections walk every object that torch has made: most of a
        # second per command. Frozen, they are left to the OS, which frees the process's memory anyway.
        gc.freeze()
