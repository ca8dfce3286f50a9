"""The command line: thin Typer commands, each turning its options into a frozen config and calling one
library function (docs/architecture.md). `skinseg.cli:main` is the `skinseg` command; `skinseg.cli.app` is the
Typer group with every command (skinseg.cli.commands)."""

from __future__ import annotations

import typer

from skinseg.cli.commands import main


def __getattr__(name: str) -> typer.Typer:
    """`app`, built when first asked for: `skinseg` itself builds only the command it runs."""
    if name == "app":
        from skinseg.cli.commands import build_app

        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "main"]
