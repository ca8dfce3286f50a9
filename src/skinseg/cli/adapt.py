"""`skinseg adapt`: options -> AdaptConfig -> adaptation.pipeline.adapt, and the before/after table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from skinseg.adaptation.config import MAX_FOLDS, MIN_FOLDS
from skinseg.cli.base import DeviceOption, PrecisionOption, console, heavy_imports, out, report_errors
from skinseg.cli.tables import literal, print_notes
from skinseg.training.config import parse_duration


@report_errors
def adapt(
    data: Annotated[
        Path,
        typer.Option(help="Your labelled images: a raw folder, a .zip or a prepared set, as prepare reads them."),
    ],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="The adapted model to write (.safetensors).")],
    model: Annotated[Path | None, typer.Option(help="The model to start from [default: the bundled model].")] = None,
    time_budget: Annotated[
        str,
        typer.Option(
            metavar="DURATION",
            help="Wall-clock budget (e.g. 5m, 90s): the fine-tunes are cut to fit it, or left out (reading and"
            " scoring your images are not cut).",
        ),
    ] = "5m",
    folds: Annotated[
        int, typer.Option(help=f"Cross-validation folds ({MIN_FOLDS}-{MAX_FOLDS}): your images held out in turn.")
    ] = 5,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the figures and the decision as JSON.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write an HTML page: each image before and after, worst first.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the folds and of the fine-tunes' batches and augmentation.")] = 0,
    precision: PrecisionOption = "auto",
    device: DeviceOption = "auto",
) -> None:
    """Fit a model to your site's outlines from a few labelled images; kept only where cross-validation shows a
    gain (docs/adapt.md)."""
    with heavy_imports():
        from skinseg.adaptation import AdaptConfig, adapt
        from skinseg.cli.progress import progress_bar

    config = AdaptConfig(
        data=data,
        out=out_file,
        model=model,
        overwrite=overwrite,
        folds=folds,
        time_budget=parse_duration(time_budget),
        seed=seed,
        device=device,
        precision=precision,
        json_file=json_file,
        report=report,
    )
    with progress_bar(console, "Adapting") as advance:
        result = adapt(config, on_progress=lambda stage, done, total: advance(done, total, stage))
    out.print(adapt_table(result))
    for path, reason in result.skipped:
        console.print(f"[yellow]skipped[/] {literal(str(path))}: {literal(reason)}", soft_wrap=True, highlight=False)
    print_notes(console, result.notes)
    setting = f"threshold {result.threshold:g}, boundary offset {result.boundary_offset:+g}"
    out.print(f"{verdict(result)} ({setting}); wrote {literal(str(result.out))}", soft_wrap=True, highlight=False)


def verdict(result) -> str:
    if result.chosen == "fine-tuned":
        return "adapting helps: the fine-tuned model is written"
    if result.chosen == "calibrated":
        why = "fine-tuning added no sure gain" if result.recipe is not None else "no fine-tune was tried"
        return f"a new threshold and outline offset help ({why}): the starting model is written with them"
    return "no sure gain on your images: the starting model is written unchanged"


def adapt_table(result) -> Table:
    table = Table(title=f"Cross-validated Dice on {result.images} of your images ({result.seconds:.0f} s)")
    for column in ("candidate", "Dice", "95% interval", "gain", "gain's 95% interval", ""):
        table.add_column(column)
    for e in result.estimates:
        low, high = e.dice_interval
        gain_low, gain_high = e.gain_interval
        chosen = "[bold]chosen[/]" if e.name == result.chosen else ""
        table.add_row(
            e.name,
            f"{e.dice:.4f}",
            f"{low:.4f}-{high:.4f}",
            f"{e.gain:+.4f}",
            f"{gain_low:+.4f} to {gain_high:+.4f}",
            chosen,
        )
    return table
