"""`skinseg prepare`: options -> PrepareConfig -> prepare_dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skinseg.cli.base import CHOICES, console, out, report_errors


@report_errors
def prepare(
    data: Annotated[
        Path,
        typer.Option(
            help="Raw data: a folder (images/ + masks/, ISIC 2016-2018, HAM10000 or PH2 layout) or a .zip file."
        ),
    ],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Cache folder [default: prepared/<name>-<size>].")
    ] = None,
    size: Annotated[int, typer.Option(help="Side of the square images and masks stored.")] = 256,
    layout: Annotated[str, typer.Option(help=f"{CHOICES}.")] = "auto",
    mask_suffix: Annotated[
        str | None,
        typer.Option(help="What a mask's file name adds to its image's (e.g. _segmentation) [default: by layout]."),
    ] = None,
    split: Annotated[str, typer.Option(help="Train/val/test fractions.")] = "60/20/20",
    seed: Annotated[int, typer.Option(help="Seed of the split (stable per image id).")] = 0,
    split_file: Annotated[Path | None, typer.Option(help="A given split: JSON or CSV of id -> train/val/test.")] = None,
    group_by: Annotated[
        str | None,
        typer.Option(
            help="FILE.csv:COLUMN: images with one value of COLUMN share a split (e.g. a lesion's images);"
            " 'none' to turn off [default: the layout's, HAM10000_metadata.csv:lesion_id]."
        ),
    ] = None,
    strict: Annotated[bool, typer.Option(help="Fail on the first bad file instead of skipping it.")] = False,
    force: Annotated[bool, typer.Option(help="Rebuild even if the cache is up to date.")] = False,
    workers: Annotated[int, typer.Option(help="Decoding processes (0: one per core).")] = 0,
) -> None:
    """Find image/mask pairs, check them, resize, cache and split 60/20/20."""
    from skinseg.cli.progress import lazy_bar, notes_printer
    from skinseg.cli.tables import prepare_summary, print_notes
    from skinseg.data.config import PrepareConfig
    from skinseg.data.prepare import prepare_dataset
    from skinseg.data.splits import parse_fractions

    target = out_dir or Path("prepared") / f"{data.resolve().name.removesuffix('.zip')}-{size}"
    config = PrepareConfig(
        data=data,
        out=target,
        size=size,
        layout=layout,
        mask_suffix=mask_suffix,
        split=parse_fractions(split),
        seed=seed,
        split_file=split_file,
        group_by=group_by,
        strict=strict,
        force=force,
        workers=workers,
    )
    with lazy_bar(console, "Preparing") as advance:
        result = prepare_dataset(config, progress=advance, on_notes=notes_printer(console))
    out.print(prepare_summary(result))
    print_notes(console, result.notes)
