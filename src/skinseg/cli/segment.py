"""`skinseg segment`: options -> SegmentConfig -> segment_paths."""

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
from skinseg.cli.flags import in_flags
from skinseg.cli.tables import literal
from skinseg.inference.config import CROP_MARGIN, MAX_CROP_MARGIN, MAX_CROP_SIZE


@report_errors
def segment(
    inputs: Annotated[
        list[Path],
        typer.Argument(metavar="IMAGES...", help="Image files, folders or glob patterns.", show_default=False),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Mask file for one input, folder for many.")],
    model: ModelOption = None,
    threshold: ThresholdOption = None,
    overlay: Annotated[
        bool, typer.Option(help="Also write the image with the lesion outline (<stem>_overlay.png).")
    ] = False,
    probabilities: Annotated[
        bool, typer.Option(help="Also write the probability map (<stem>_probability.png, 0-255).")
    ] = False,
    tta: TtaOption = False,
    postprocess: PostprocessOption = True,
    summary: Annotated[
        Path | None,
        typer.Option(
            help="Per-image .csv or .json: lesion area, bounding box, mean probability, time (written as each"
            " image is done)."
        ),
    ] = None,
    measure: Annotated[
        bool,
        typer.Option(help="Add the lesion's measurements (skinseg measure's columns) to --summary and --report."),
    ] = False,
    pixel_size: Annotated[
        float | None, typer.Option(help="Millimetres per pixel, for the mm columns of --measure.")
    ] = None,
    crops: Annotated[
        Path | None,
        typer.Option(help="Folder for lesion crops from the full image (<stem>_crop.png); no lesion: no crop."),
    ] = None,
    crop_margin: Annotated[
        float,
        typer.Option(
            help=f"Margin around the lesion's box, on each side, as a fraction of its size (0 to {MAX_CROP_MARGIN:g})."
        ),
    ] = CROP_MARGIN,
    crop_size: Annotated[
        int | None,
        typer.Option(help=f"Resize each crop so that its longer side is this many pixels (at most {MAX_CROP_SIZE})."),
    ] = None,
    crop_square: Annotated[
        bool, typer.Option(help="Widen each crop to a square around the lesion (as far as the image allows).")
    ] = False,
    coco: Annotated[
        Path | None,
        typer.Option(help="Also write the masks as COCO instance annotations (JSON: CVAT, Label Studio)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    skip_existing: Annotated[
        bool,
        typer.Option(
            help="Leave outputs that exist (counted, not failures) and write only the missing ones: resume a batch."
        ),
    ] = False,
    batch_size: BatchSizeOption = 8,
    backend: BackendOption = "torch",
    precision: PrecisionOption = "auto",
    device: DeviceOption = "auto",
    report: ReportOption = None,
    report_max_cases: ReportMaxCasesOption = 500,
) -> None:
    """Segment images; writes 0/255 PNG masks the size of each input."""
    from skinseg.inference.config import SegmentConfig
    from skinseg.inputs import collect_inputs, output_paths

    config = SegmentConfig(
        inputs=tuple(inputs),
        output=output,
        run=model_run(model, threshold, tta, postprocess, backend, precision, device, batch_size),
        overwrite=overwrite,
        skip_existing=skip_existing,
        overlay=overlay,
        probabilities=probabilities,
        summary=summary,
        report=report,
        report_max_cases=report_max_cases,
        measure=measure,
        pixel_size=pixel_size,
        crops=crops,
        crop_margin=crop_margin,
        crop_size=crop_size,
        crop_square=crop_square,
        coco=coco,
    )
    output_paths(collect_inputs(config.inputs), config.output)  # a wrong path is reported before torch is imported
    with heavy_imports():
        from skinseg.cli.progress import lazy_bar, notes_printer
        from skinseg.inference.segment import segment_paths

    with lazy_bar(console, "Segmenting") as advance:
        result = segment_paths(config, on_progress=advance, on_notes=notes_printer(console))
    _print_result(result, crops)
    if coco and not result.coco:
        console.print("no --coco written: no image was segmented or kept", highlight=False)
    if report and not result.report:  # made anew with this run's images (docs/segment.md)
        console.print("no --report written: no image was segmented in this run", highlight=False)
    report_skipped(result.failed)
    if result.failed:
        raise typer.Exit(1)


def _print_result(result, crops: Path | None) -> None:
    """What was written, left out, skipped and failed."""
    from skinseg.inputs import NOT_INPUT_ENDINGS

    if result.ignored:
        first = literal(str(result.ignored[0]))
        console.print(
            f"left out {len(result.ignored)} mask or output file(s) found in the input folder(s)"
            f" (names ending {NOT_INPUT_ENDINGS}; first: {first})",
            highlight=False,
            soft_wrap=True,
        )
    note_named_like_outputs(result.named_like_outputs)
    if result.repeated:
        repeat, kept = (literal(str(path)) for path in result.repeated[0])
        console.print(
            f"{len(result.repeated)} input(s) are the same file as another, segmented once (first: {repeat}, which is"
            f" {kept})",
            highlight=False,
            soft_wrap=True,
        )
    existing = f"; {len(result.existing)} already there (skipped)" if result.existing else ""
    existing += f"; {len(result.completed)} completed (mask there, other outputs added)" if result.completed else ""
    failed = f"; {len(result.failed)} failed" if result.failed else ""
    out.print(
        f"wrote {len(result.written)} mask(s) to {literal(str(result.output))}{existing}{failed}",
        soft_wrap=True,
        highlight=False,
    )
    if crops is not None:
        none = f"; {len(result.uncropped)} without a lesion, not cropped" if result.uncropped else ""
        out.print(
            f"wrote {len(result.cropped)} crop(s) to {literal(str(crops))}{none}", soft_wrap=True, highlight=False
        )
    written = (("summary", result.summary), ("report", result.report), ("COCO annotations", result.coco))
    for what, path in written:
        if path is not None:
            out.print(f"{what} in {literal(str(path))}", soft_wrap=True, highlight=False)


def note_named_like_outputs(paths: list[Path]) -> None:
    """A word on inputs named one by one whose names are those of masks and outputs, which a folder or a quoted
    pattern leaves out: an unquoted pattern, expanded by the shell, brings them in."""
    from skinseg.inputs import NOT_INPUT_ENDINGS

    if paths:
        console.print(
            f"{len(paths)} input(s) named like masks or outputs (names ending {NOT_INPUT_ENDINGS};"
            f" first: {literal(str(paths[0]))}) were given one by one, so taken as images: to leave such files out,"
            " give the folder or quote the pattern ('DIR/*.jpg')",
            highlight=False,
            soft_wrap=True,
        )


def report_skipped(skipped: list, shown: int = 20) -> None:
    """One line per skipped file, the first `shown` of them."""
    for path, reason in skipped[:shown]:
        console.print(
            f"[yellow]skipped[/] {literal(str(path))}: {literal(in_flags(reason))}", highlight=False, soft_wrap=True
        )
    if len(skipped) > shown:
        console.print(f"... and {len(skipped) - shown} more", highlight=False)
