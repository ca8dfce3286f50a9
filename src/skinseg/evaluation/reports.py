"""The files `skinseg evaluate` writes from its reports: JSON, CSV, figures and HTML pages, each checked
before any scoring."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from skinseg.data.images import load_mask, load_rgb
from skinseg.errors import SkinsegError
from skinseg.evaluation.config import EvaluateConfig
from skinseg.evaluation.metrics import METRIC_NAMES
from skinseg.evaluation.scoring import EvalReport
from skinseg.fileio import write_csv, write_text
from skinseg.plan import Plan
from skinseg.reporting.html import HTML_SUFFIXES

FIGURE_FILES = ("dice_histogram.png", "cases.png")


def figure_folders(figures: Path, set_names: list[str]) -> list[Path]:
    """The figures folder, or a subfolder per data set when there are several."""
    return [figures / name for name in set_names] if len(set_names) > 1 else [figures]


REPORT_SUFFIXES = {"`json_file`": (".json",), "`csv_file`": (".csv",), "`report`": HTML_SUFFIXES}


def plan_evaluation(config: EvaluateConfig, set_names: list[str]) -> Plan:
    """What an evaluation reads (the model, the data sets or the predicted and true masks) and writes (each report file,
    the figures): checked before any scoring."""
    plan = Plan("evaluate", config.overwrite)
    if config.pred is not None and config.truth is not None:
        plan.read(config.pred, "`pred` folder", folder=True)
        plan.read(config.truth, "`truth` folder", folder=True)
        if os.path.realpath(config.pred) == os.path.realpath(config.truth):  # every image would score Dice 1
            raise SkinsegError(
                "`pred` and `truth` are one folder: the masks would be scored against themselves", config.pred
            )
    for data in config.data_sets:
        plan.read_data_set(data)
    if (model := config.run.user_model) is not None:
        plan.read(model, "model")
    _plan_reports(plan, config.json_file, config.csv_file, config.figures, config.report, set_names)
    return plan


def _plan_reports(
    plan: Plan,
    json_file: Path | None,
    csv_file: Path | None,
    figures: Path | None,
    html_file: Path | None,
    set_names: list[str],
) -> None:
    """The report files of `set_names`, each with its format's suffix (the HTML page of every set), and the
    figures folder with its figures (a subfolder per set when there are several)."""
    pages = [html_page_path(html_file, name, len(set_names) > 1) for name in set_names] if html_file else []
    named = [("`json_file`", json_file), ("`csv_file`", csv_file), *(("`report`", page) for page in pages)]
    for option, path in ((option, path) for option, path in named if path is not None):
        plan.write(path, option, lock=True, suffixes=REPORT_SUFFIXES[option])
    if figures is not None:
        plan.write(figures, "`figures`", folder=True, lock=True)
        for folder in figure_folders(figures, set_names):
            for name in FIGURE_FILES:
                plan.write(folder / name, "figure")


def write_reports(
    reports: EvalReport | list[EvalReport],
    json_file: Path | None = None,
    csv_file: Path | None = None,
    figures: Path | None = None,
    html_file: Path | None = None,
    overwrite: bool = False,
) -> None:
    """One report as before; several (one per data set) kept apart: a JSON list under "sets", a `set` column
    in the CSV, a figures folder and an HTML page (REPORT-<set>.html) per set. `html_file` needs the reports
    made with `cases`; an existing file is kept unless `overwrite` (plan_evaluation says so before the
    scoring)."""
    several = isinstance(reports, list) and len(reports) > 1
    reports = reports if isinstance(reports, list) else [reports]
    plan = Plan("evaluate", overwrite)
    _plan_reports(plan, json_file, csv_file, figures, html_file, [r.name for r in reports])
    plan.check()
    if html_file:
        from skinseg.reporting.html import evaluation_page, write_page

        for r in reports:
            if r.cases is None:
                raise SkinsegError("an HTML report needs the evaluation run with cases=ReportCases()")
            write_page(html_page_path(html_file, r.name, several), evaluation_page(r, r.cases), overwrite)
    if json_file:
        content = {"sets": [r.to_json() for r in reports]} if several else reports[0].to_json()
        write_text(json_file, json.dumps(content, indent=1))
    if csv_file:
        rows = [{"set": r.name, **row} for r in reports for row in r.per_image]
        write_csv(csv_file, rows, ["set", "id", *METRIC_NAMES] if several else ["id", *METRIC_NAMES])
    if figures:
        for r, folder in zip(reports, figure_folders(Path(figures), [r.name for r in reports]), strict=True):
            write_figures(r, folder)


def html_page_path(html_file: Path, set_name: str, several: bool) -> Path:
    """report.html, or report-<set>.html for each of several data sets."""
    return html_file.with_name(f"{html_file.stem}-{set_name}{html_file.suffix}") if several else html_file


WORST_CASES = 3  # rows of cases.png after the best and the median


def write_figures(report: EvalReport, folder: Path) -> None:
    """dice_histogram.png and cases.png (the best, the median and the WORST_CASES worst images by Dice)."""
    from skinseg.reporting.figures import plot_cases, plot_histogram, shrink

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SkinsegError(f"cannot make the figures folder: {exc.strerror or exc}", folder) from None
    dice = [row["dice"] for row in report.per_image]
    plot_histogram(dice, folder / "dice_histogram.png")
    if not report.pairs or report.predictions is None:
        return
    predictions = report.predictions
    order = np.argsort(dice)
    worst = [("worst" if k == 0 else f"worst {k + 1}", order[k]) for k in range(min(WORST_CASES, len(order)))]
    picks = [("best", order[-1]), ("median", order[len(order) // 2]), *worst]
    cases = []
    for label, index in picks:
        row = report.per_image[index]
        pair = report.pairs[row["id"]]
        side = predictions.side
        cases.append(
            {
                "image": shrink(load_rgb(pair.image), side),
                "truth": shrink(load_mask(pair.mask), side),
                "prediction": predictions[row["id"]],
                "title": f"{label}: {row['id']} (Dice {row['dice']:.3f})",
            }
        )
    plot_cases(cases, folder / "cases.png")
