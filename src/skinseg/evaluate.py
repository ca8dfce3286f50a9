"""`skinseg evaluate`: the ISIC challenge metrics for a model on a dataset, or for a folder of masks.

A model is scored the way `skinseg segment` uses it: each source image at its own resolution goes
through the model, the probabilities are resized back, and the mask is compared with the source mask
file (binarised by the ISIC rule), so the figures match the official scorer run on segment's output.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from skinseg import __version__
from skinseg.config import EvaluateConfig
from skinseg.data.images import IMAGE_SUFFIXES, load_mask, load_rgb
from skinseg.data.layouts import MASK_SUFFIXES, Pair, discover_pairs
from skinseg.data.prepare import load_manifest
from skinseg.errors import SkinsegError
from skinseg.fileio import check_output, refuse_existing, write_csv, write_text
from skinseg.metrics import METRIC_NAMES, image_metrics, summarise

if TYPE_CHECKING:
    from skinseg.html_report import ReportCases
    from skinseg.inference import Segmenter


@dataclass
class EvalReport:
    title: str
    name: str
    per_image: list[dict]  # {"id": ..., metric: value, ...}
    summary: dict[str, dict[str, float]]
    pairs: dict[str, Pair] | None = None  # for figures: id -> source files
    model_path: str | None = None
    segmenter: Segmenter | None = None  # the Segmenter that made the predictions, for figures
    cases: ReportCases | None = None  # per-image overlays and areas, for the HTML report
    unmatched_predictions: list[str] | None = None  # evaluate_folders: ids of predictions with no true mask
    settings: dict | None = None  # what was scored and how: model, data, split, threshold, TTA, ..., version

    def to_json(self) -> dict:
        return {
            "title": self.title,
            "name": self.name,
            "count": len(self.per_image),
            **({"settings": self.settings} if self.settings else {}),
            "macro_average": {name: self.summary[name]["mean"] for name in METRIC_NAMES},
            "summary": self.summary,
            "per_image": self.per_image,
        } | ({"unmatched_predictions": self.unmatched_predictions} if self.unmatched_predictions else {})


def split_pairs(data: Path, split: str, size: int = 256, split_seed: int = 0) -> tuple[list[Pair], str]:
    """The image/mask pairs of one split and a description of them. A raw folder is split as `train` splits
    it (prepared on the fly into the cache at `size`, or reused from there); `all` takes every pair."""
    from skinseg.data.dataset import ensure_prepared

    data = Path(data)
    manifest, root = load_manifest(data), data
    where = f"{split} split of {data}"
    if manifest is None:
        if split == "all":
            return discover_pairs(data).pairs, f"all pairs in {data}"
        prepared = ensure_prepared(data, size, split_seed)
        manifest, root, where = (
            prepared.manifest,
            prepared.root,
            f"{split} split of {data} (split seed {split_seed}, prepared in {prepared.root})",
        )
    items = [item for item in manifest["items"] if split == "all" or item["split"] == split]
    if not items:
        raise SkinsegError(f"the prepared dataset has no '{split}' images", data)
    bases = _relative_bases(manifest, root)
    pairs = [Pair(item["id"], _source(item["image"], bases), _source(item["mask"], bases)) for item in items]
    missing = [p.image for p in pairs if not p.image.is_file()] + [p.mask for p in pairs if not p.mask.is_file()]
    if missing:
        older = " (its manifest, from an older skinseg, stores them relative to where prepare ran: run from there)"
        relative = any(not Path(item["image"]).is_absolute() for item in items)
        raise SkinsegError(
            f"{len(missing)} source files of the prepared dataset are gone (first: {missing[0]})"
            + (older if relative else ""),
            data,
        )
    for pair, item in zip(pairs, items, strict=True):  # only the split that is read: a cheap check
        if item.get("sha256") and hashlib.sha256(pair.image.read_bytes()).hexdigest() != item["sha256"]:
            raise SkinsegError(
                f"source image changed since the prepared set {data} was made: its cache is stale; "
                "re-run `skinseg prepare`",
                pair.image,
            )
    return pairs, where


def _relative_bases(manifest: dict, root: Path) -> list[tuple[Path, Path | None]]:
    """Where an older manifest's relative source paths may start: the folder prepare ran in is an ancestor of
    the recorded (absolute) source folder, or of the cache folder for unpacked zips; then the current folder.
    Each base comes with the folder its paths must stay in."""
    bases: list[tuple[Path, Path | None]] = []
    for inside in (Path(manifest["source"]) if manifest.get("source") else None, Path(root).resolve()):
        if inside is not None and inside.is_absolute():
            bases += [(base, inside) for base in (inside, *inside.parents)]
    return [*bases, (Path.cwd(), None)]


def _source(stored: str, bases: list[tuple[Path, Path | None]]) -> Path:
    path = Path(stored)
    if path.is_absolute():
        return path
    for base, inside in bases:
        candidate = Path(os.path.normpath(base / path))
        if (inside is None or candidate.is_relative_to(inside)) and candidate.is_file():
            return candidate
    return path


def evaluate_model(config: EvaluateConfig, console=None, cases: ReportCases | None = None) -> EvalReport:
    from rich.console import Console

    from skinseg.inference import Segmenter
    from skinseg.progress import progress_bar
    from skinseg.reports import print_notes

    segmenter = Segmenter(
        config.model, config.device, config.threshold, config.tta, config.postprocess, precision=config.precision
    )
    print_notes(console, segmenter.notes)
    pairs, where = split_pairs(Path(config.data), config.split, segmenter.info.input_size, config.split_seed)
    rows = []
    with progress_bar(console or Console(quiet=True), "Evaluating") as advance:
        for start in range(0, len(pairs), config.batch_size):
            chunk = pairs[start : start + config.batch_size]
            images = [load_rgb(p.image) for p in chunk]
            predictions = segmenter.masks(images)
            for pair, image, prediction in zip(chunk, images, predictions, strict=False):
                truth = load_mask(pair.mask)
                if truth.shape != prediction.shape:
                    raise SkinsegError(
                        f"mask is {truth.shape[1]}x{truth.shape[0]} but its image is "
                        f"{prediction.shape[1]}x{prediction.shape[0]}",
                        pair.mask,
                    )
                rows.append({"id": pair.id, **image_metrics(truth, prediction)})
                if cases is not None:
                    cases.add(pair.id, prediction, truth, image)
            advance(len(rows), len(pairs))
    model_name = str(config.model) if config.model else "bundled model"
    options = "".join(f", {name}" for name, on in (("TTA", config.tta), ("post-processing", config.postprocess)) if on)
    return EvalReport(
        f"{model_name} on the {where}{options}, {segmenter.precision.name}",
        data_set_name(Path(config.data)),
        rows,
        summarise(rows),
        {p.id: p for p in pairs},
        model_name,
        segmenter,
        cases,
        settings={
            "model": model_name,
            "data": str(Path(config.data).resolve()),
            "split": config.split,
            "threshold": segmenter.threshold,
            "tta": config.tta,
            "postprocess": config.postprocess,
            "precision": segmenter.precision.name,
            "skinseg_version": __version__,
        },
    )


def _mask_files_by_id(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise SkinsegError("folder not found", folder)
    found = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            image_id = re.sub(rf"(?:{MASK_SUFFIXES})$", "", path.stem, flags=re.I)
            found[image_id] = path
    return found


def evaluate_folders(pred: Path, truth: Path, cases: ReportCases | None = None) -> EvalReport:
    """Score predicted masks against true masks, matched by image id (as the official scorer does)."""
    truths, preds = _mask_files_by_id(Path(truth)), _mask_files_by_id(Path(pred))
    if not truths:
        raise SkinsegError("no mask files found", truth)
    missing = [i for i in truths if i not in preds]
    if missing:
        raise SkinsegError(f"no prediction for {len(missing)} of {len(truths)} images (first: {missing[0]})", pred)
    unmatched = [i for i in preds if i not in truths]  # not scored: reported, not silently dropped
    rows = []
    for image_id, truth_path in truths.items():
        truth_mask, pred_mask = load_mask(truth_path), load_mask(preds[image_id])
        if truth_mask.shape != pred_mask.shape:
            raise SkinsegError(
                f"prediction is {pred_mask.shape[1]}x{pred_mask.shape[0]}, truth is "
                f"{truth_mask.shape[1]}x{truth_mask.shape[0]}",
                preds[image_id],
            )
        rows.append({"id": image_id, **image_metrics(truth_mask, pred_mask)})
        if cases is not None:
            cases.add(image_id, pred_mask, truth_mask)
    return EvalReport(
        f"{pred} against {truth}", Path(pred).name, rows, summarise(rows), cases=cases, unmatched_predictions=unmatched
    )


def data_set_name(data: Path) -> str:
    """A data set's short name, as training names it: its raw folder's."""
    from skinseg.data.dataset import set_name

    return set_name(data, load_manifest(data))


FIGURE_FILES = ("dice_histogram.png", "cases.png")


def figure_folders(figures: Path, set_names: list[str]) -> list[Path]:
    """The figures folder, or a subfolder per data set when there are several."""
    return [figures / name for name in set_names] if len(set_names) > 1 else [figures]


def check_report_paths(
    json_file: Path | None,
    csv_file: Path | None,
    figures: Path | None,
    set_names: list[str],
    inputs: list[Path],
    overwrite: bool = False,
) -> None:
    """Before any scoring: each report file has its format's suffix, is not an input (a file of the model or
    under an input folder that exists already is refused even with `overwrite`) and exists only with
    `overwrite`; `figures` is a folder whose figures exist only with `overwrite`."""
    input_folders = [os.path.realpath(p) for p in inputs if p.is_dir()]
    for path, suffix in ((json_file, ".json"), (csv_file, ".csv")):
        if path is None:
            continue
        if path.suffix.lower() != suffix:
            raise SkinsegError(f"--{suffix[1:]} writes {suffix[1:].upper()}: name the file {suffix}", path)
        real = os.path.realpath(path)
        if path.exists() and any(os.path.commonpath([real, folder]) == folder for folder in input_folders):
            raise SkinsegError("lies in an input folder of this evaluation: refusing to write over it", path)
        check_output(path, overwrite, [p for p in inputs if not p.is_dir()])
    if figures is not None:
        if figures.exists() and not figures.is_dir():
            raise SkinsegError("--figures takes a folder, and this is a file", figures)
        for folder in figure_folders(figures, set_names):
            for name in FIGURE_FILES:
                refuse_existing(folder / name, overwrite)


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
    made with `cases`; an existing file is kept unless `overwrite` (check_report_paths says so before the
    scoring)."""
    several = isinstance(reports, list) and len(reports) > 1
    reports = reports if isinstance(reports, list) else [reports]
    check_report_paths(json_file, csv_file, figures, [r.name for r in reports], [], overwrite)
    if html_file:
        from skinseg.html_report import evaluation_page, write_page

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
    from skinseg.figures import plot_cases, plot_histogram

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SkinsegError(f"cannot make the figures folder: {exc.strerror or exc}", folder) from None
    dice = [row["dice"] for row in report.per_image]
    plot_histogram(dice, folder / "dice_histogram.png")
    if not report.pairs or report.segmenter is None:
        return
    segmenter = report.segmenter
    order = np.argsort(dice)
    worst = [("worst" if k == 0 else f"worst {k + 1}", order[k]) for k in range(min(WORST_CASES, len(order)))]
    picks = [("best", order[-1]), ("median", order[len(order) // 2]), *worst]
    cases = []
    for label, index in picks:
        row = report.per_image[index]
        pair = report.pairs[row["id"]]
        image = load_rgb(pair.image)
        cases.append(
            {
                "image": image,
                "truth": load_mask(pair.mask),
                "prediction": segmenter.masks([image])[0],
                "title": f"{label}: {row['id']} (Dice {row['dice']:.3f})",
            }
        )
    plot_cases(cases, folder / "cases.png")
