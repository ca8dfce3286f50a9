"""`skinseg export`: the model as ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skinseg.cli.base import heavy_imports, out, report_errors
from skinseg.cli.tables import literal


@report_errors
def export(
    model: Annotated[
        Path | None, typer.Argument(metavar="[MODEL]", help="Weights file [default: the bundled model].")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write.")] = Path("skinseg.onnx"),
    format: Annotated[str, typer.Option(help="onnx (the only format).")] = "onnx",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Export the model as ONNX (dynamic batch and image size, metadata included)."""
    with heavy_imports():
        from skinseg.errors import SkinsegError
        from skinseg.inference.onnx import export_onnx

    if format != "onnx":
        raise SkinsegError(f"unknown export format '{format}'; only onnx is supported")
    written = export_onnx(model, output, overwrite=overwrite)
    out.print(f"wrote {literal(str(written))}", soft_wrap=True, highlight=False)
