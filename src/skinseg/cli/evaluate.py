"""`skinseg evaluate`: options -> EvaluateConfig -> evaluate_model (or evaluate_folders) -> reports."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from skinseg.cli.base import (
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
from skinseg.cli.tables import literal


@report_errors
def evaluate(
    data: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="<folder>",
            help="A prepared dataset (its test split by default) or a raw folder with masks; repeat it to score"
            " several data sets, each on its own row.",
        ),
    ] = None,
    model: ModelOption = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="train, val, test or all; a raw folder is split as `train --split-seed` splits it"
            " [default: a prepared set's test split; a raw folder whole]."
        ),
    ] = None,
    pred: Annotated[Path | None, typer.Option(help="Folder of predicted masks to score (with --truth).")] = None,
    truth: Annotated[Path | None, typer.Option(help="Folder of ground-truth masks (with --pred).")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON.")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Write per-image metrics as CSV.")] = None,
    figures: Annotated[
        Path | None, typer.Option(help="Folder for best/median/worst grids and a Dice histogram.")
    ] = None,
    threshold: ThresholdOption = None,
    tta: TtaOption = False,
    postprocess: PostprocessOption = True,
    batch_size: BatchSizeOption = 16,
    split_seed: Annotated[
        int, typer.Option(help="When --data is a raw folder: the seed it is split with (as `train --split-seed`).")
    ] = 0,
    precision: PrecisionOption = "auto",
    device: DeviceOption = "auto",
    html: ReportOption = None,
    report_max_cases: ReportMaxCasesOption = 500,
    overwrite: Annotated[
        bool, typer.Option(help="Replace existing output files (--json, --csv, --figures, --report).")
    ] = False,
) -> None:
    """Score a model (or a folder of masks) with the ISIC challenge metrics."""
    with heavy_imports():
        from skinseg.data.dataset import data_set_name
        from skinseg.errors import SkinsegError
        from skinseg.evaluation.config import EvaluateConfig
        from skinseg.evaluation.reports import plan_evaluation, write_reports

    if pred is not None or truth is not None:
        if pred is None or truth is None:
            raise SkinsegError("--pred and --truth go together")
        if data or model is not None:
            raise SkinsegError("--pred/--truth score masks already made: --data and --model do not apply to them")
        names = [pred.name]
    elif not data:
        raise SkinsegError("give --data (a prepared or raw dataset), or --pred with --truth")
    else:
        names = [data_set_name(d) for d in data]
        if len(set(names)) < len(names):
            raise SkinsegError(f"two --data sets have one name ({', '.join(names)}); each set needs its own")
    config = EvaluateConfig(
        run=model_run(model, threshold, tta, postprocess, "torch", precision, device, batch_size),
        data=data[0] if data else None,
        more_data=tuple(data[1:]) if data else (),
        pred=pred,
        truth=truth,
        json_file=json_file,
        csv_file=csv_file,
        figures=figures,
        report=html,
        report_max_cases=report_max_cases,
        overwrite=overwrite,
        split=split,
        split_seed=split_seed,
    )
    plan = plan_evaluation(config, names)
    plan.check()  # before any scoring
    with plan.hold():  # another evaluate writing these reports refuses this one at once
        reports = _score(config)
        write_reports(
            reports, json_file=json_file, csv_file=csv_file, figures=figures, html_file=html, overwrite=overwrite
        )
    _print_results(config, reports)


def _score(config) -> list:
    """The report of every data set of `config` (or of its --pred against --truth)."""
    from skinseg.cli.progress import lazy_bar, notes_printer
    from skinseg.evaluation.scoring import evaluate_folders, evaluate_model
    from skinseg.reporting.html import ReportCases

    def cases() -> ReportCases | None:
        return ReportCases(config.report_max_cases) if config.report else None

    if config.pred is not None:
        return [evaluate_folders(config.pred, config.truth, cases())]
    reports = []
    for data in config.data_sets:
        with lazy_bar(console, "Evaluating") as advance:
            one_set = dataclasses.replace(config, data=data, more_data=())
            reports.append(evaluate_model(one_set, cases(), on_progress=advance, on_notes=notes_printer(console)))
    return reports


def _print_results(config, reports: list) -> None:
    """The metrics of each set (and a table of the sets), notes on what was not scored, and the pages written."""
    from skinseg.cli.tables import metrics_table, print_notes, sets_table
    from skinseg.evaluation.reports import html_page_path

    if config.figures and config.pred is not None:
        note = "--pred/--truth give masks without their images: --figures draws the Dice histogram only"
        print_notes(console, [note])
    for report in reports:
        out.print(metrics_table(report))
        if unmatched := report.unmatched_predictions:
            print_notes(
                console, [f"{len(unmatched)} prediction(s) have no true mask, not scored (first: {unmatched[0]})"]
            )
    if len(reports) > 1:
        out.print(sets_table(reports))
    for written in (config.json_file, config.csv_file):
        if written is not None:
            out.print(f"wrote {literal(str(written))}", soft_wrap=True, highlight=False)
    if config.figures is not None:
        out.print(f"figures in {literal(str(config.figures))}", soft_wrap=True, highlight=False)
    if config.report:
        for page in (html_page_path(config.report, r.name, len(reports) > 1) for r in reports):
            out.print(
                f"wrote {literal(str(page))} ({page.stat().st_size / 1e6:.1f} MB)", soft_wrap=True, highlight=False
            )
