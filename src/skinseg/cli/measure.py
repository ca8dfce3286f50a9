"""`skinseg measure`: options -> MeasureConfig -> measure_paths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skinseg.cli.base import (
    BackendOption,
    BatchSizeOption,
    DeviceOption,
    ModelOption,
    PostprocessOption,
    PrecisionOption,
    ReportMaxCasesOption,
    ReportOption,
    ThresholdOption,
    TtaOption,
    console,
    heavy_imports,
    model_run,
    out,
    report_errors,
)
from skinseg.cli.segment import note_named_like_outputs, report_skipped
from skinseg.cli.tables import literal
from skinseg.inputs import MASK_NAMES


@report_errors
def measure(
    inputs: Annotated[
        list[Path],
        typer.Argument(metavar="IMAGES...", help="Image files, folders or glob patterns.", show_default=False),
    ],
    masks: Annotated[
        Path | None,
        typer.Option(
            help=f"Folder of masks to measure, paired by name ({MASK_NAMES})"
            " [default: segment the images with the model].",
        ),
    ] = None,
    pixel_size: Annotated[
        float | None, typer.Option(help="Millimetres per pixel: adds area_mm2, perimeter_mm and diameters in mm.")
    ] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Write one row per image as CSV.")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write one row per image as a JSON list.")] = None,
    report: ReportOption = None,
    report_max_cases: ReportMaxCasesOption = 500,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    skip_existing: Annotated[
        bool,
        typer.Option(
            help="Leave images that have a row in --csv/--json, measure the rest and append their rows: resume a"
            " batch (--report is made anew)."
        ),
    ] = False,
    model: ModelOption = None,
    threshold: ThresholdOption = None,
    tta: TtaOption = False,
    postprocess: PostprocessOption = True,
    batch_size: BatchSizeOption = 8,
    backend: BackendOption = "torch",
    precision: PrecisionOption = "auto",
    device: DeviceOption = "auto",
) -> None:
    """Measure each lesion: size, asymmetry, border and colours (docs/measure.md; for research, not a diagnosis)."""
    with heavy_imports():
        from skinseg.cli.progress import lazy_bar
        from skinseg.inference.config import MeasureConfig
        from skinseg.inference.measure import measure_paths
        from skinseg.measurement import TINY_DIAMETER

    config = MeasureConfig(
        inputs=tuple(inputs),
        masks=masks,
        pixel_size=pixel_size,
        csv_file=csv_file,
        json_file=json_file,
        report=report,
        report_max_cases=report_max_cases,
        overwrite=overwrite,
        skip_existing=skip_existing,
        run=model_run(model, threshold, tta, postprocess, backend, precision, device, batch_size),
    )
    with lazy_bar(console, "Measuring") as advance:
        result = measure_paths(config, on_progress=advance)
    written = " and ".join(literal(str(p)) for p in (csv_file, json_file, report) if p is not None)
    failed = f"; {len(result.existing)} measured before (skipped)" if result.existing else ""
    failed += f"; {len(result.failed)} failed" if result.failed else ""
    empty = f"; {len(result.empty)} without a lesion (a row with area 0)" if result.empty else ""
    out.print(f"measured {len(result.rows)} image(s) into {written}{empty}{failed}", soft_wrap=True, highlight=False)
    note_named_like_outputs(result.named_like_outputs)
    if result.tiny:
        console.print(
            f"{len(result.tiny)} lesion(s) under {TINY_DIAMETER} px across (first: {literal(result.tiny[0])}):"
            " measured, but their shape, border and colours rest on a few pixels (docs/measure.md, Limits)",
            highlight=False,
            soft_wrap=True,
        )
    if result.unmatched_masks:
        first = literal(str(result.unmatched_masks[0]))
        console.print(
            f"{len(result.unmatched_masks)} mask(s) in --masks have no input image (first: {first})",
            highlight=False,
            soft_wrap=True,  # a long path was broken onto the next line
        )
    report_skipped(result.failed)
    if result.failed:
        raise typer.Exit(1)
