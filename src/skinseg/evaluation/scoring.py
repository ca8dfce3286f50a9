"""`skinseg evaluate`'s scoring: the ISIC challenge metrics for a model on a data set, or for a folder of masks.

A model is scored the way `skinseg segment` uses it: each source image at its own resolution goes
through the model, the probabilities are resized back, and the mask is compared with the source mask
file (binarised by the ISIC rule), so the figures match the official scorer run on segment's output.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skinseg import __version__
from skinseg.data.dataset import data_set_name
from skinseg.data.images import load_mask, load_rgb
from skinseg.data.layouts import Pair
from skinseg.data.prepare import load_manifest
from skinseg.data.sources import default_split, split_pairs
from skinseg.errors import SkinsegError
from skinseg.evaluation.config import EvaluateConfig
from skinseg.evaluation.metrics import METRIC_NAMES, image_metrics, summarise
from skinseg.inputs import mask_files_by_id
from skinseg.measurement import measure_lesion
from skinseg.reporting.callbacks import Notes, Progress, no_notes, no_progress
from skinseg.reporting.figures import Thumbnails
from skinseg.reporting.html import ReportCases
from skinseg.runtime.threads import blas_on_one_thread


@dataclass
class EvalReport:
    title: str
    name: str
    per_image: list[dict]  # {"id": ..., metric: value, ...}
    summary: dict[str, dict[str, float]]
    pairs: dict[str, Pair] | None = None  # for figures: id -> source files
    model_facts: list[tuple[str, Any]] = field(default_factory=list)  # the model and how it ran (Segmenter.facts)
    predictions: Thumbnails | None = None  # small copies of the predicted masks, for figures
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


def evaluate_model(
    config: EvaluateConfig,
    cases: ReportCases | None = None,
    on_progress: Progress | None = None,
    on_notes: Notes | None = None,
) -> EvalReport:
    """Score the model of `config` on a split of its data set, each image at its own resolution. Everything the
    reports need is collected in this one pass: per-image metrics, `cases` for the HTML page, and small
    copies of the predictions for the figures. `on_notes(notes)`: settings asked for but ignored or emulated,
    once the model is loaded; `on_progress(done, total)`: images scored."""
    from skinseg.inference.segmenter import segmenter_for

    if config.data is None:
        raise SkinsegError("give the data set to score (`data`)")
    data = Path(config.data)
    run = config.run
    segmenter = segmenter_for(run)
    (on_notes or no_notes)(segmenter.notes)
    pairs, where = split_pairs(data, config.split, segmenter.info.input_size, config.split_seed)
    with blas_on_one_thread() if cases is not None else contextlib.nullcontext():  # measured after each forward
        rows, thumbnails = _score_pairs(config, segmenter, pairs, cases, on_progress or no_progress)
    model_name = run.label
    options = "".join(f", {name}" for name, on in (("TTA", run.tta), ("post-processing", run.postprocess)) if on)
    return EvalReport(
        f"{model_name} on the {where}{options}, {segmenter.precision.name}",
        data_set_name(data),
        rows,
        summarise(rows),
        {p.id: p for p in pairs},
        segmenter.facts(str(run.model) if run.model else None),
        thumbnails,
        cases,
        settings={
            "model": model_name,
            "data": str(data.resolve()),
            "split": config.split or default_split(load_manifest(data)),
            "threshold": segmenter.threshold,
            "tta": run.tta,
            "postprocess": run.postprocess,
            "precision": segmenter.precision.name,
            "skinseg_version": __version__,
        },
    )


def _score_pairs(config: EvaluateConfig, segmenter, pairs: list[Pair], cases: ReportCases | None, advance: Progress):
    """Each pair's metrics (rows), small copies of the predictions, and `cases` filled, a batch at a time."""
    rows: list[dict] = []
    thumbnails = Thumbnails()
    advance(0, len(pairs))
    batch_size = config.run.batch_size
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        inputs, shapes = zip(*(segmenter.read(p.image) for p in chunk), strict=True)
        probabilities = segmenter.probabilities_of(list(inputs), list(shapes))
        predictions = segmenter.masks_from(probabilities)
        for pair, prediction, probability in zip(chunk, predictions, probabilities, strict=True):
            truth = load_mask(pair.mask)
            if truth.shape != prediction.shape:
                raise SkinsegError(
                    f"mask is {truth.shape[1]}x{truth.shape[0]} but its image is "
                    f"{prediction.shape[1]}x{prediction.shape[0]}",
                    pair.mask,
                )
            rows.append({"id": pair.id, **image_metrics(truth, prediction)})
            thumbnails.add(pair.id, prediction)
            if cases is not None:  # the whole image, for the overlay and the prediction's measurements
                image = load_rgb(pair.image)
                options = dict(
                    probability=probability, threshold=segmenter.threshold, one_lesion=config.run.postprocess
                )
                measures = measure_lesion(image, prediction, **options)
                cases.add(pair.id, prediction, truth, image, metrics=rows[-1], measures=measures)
        advance(len(rows), len(pairs))
    return rows, thumbnails


def evaluate_folders(pred: Path, truth: Path, cases: ReportCases | None = None) -> EvalReport:
    """Score predicted masks against true masks, matched by image id (as the official scorer does)."""
    truths, preds = mask_files_by_id(Path(truth)), mask_files_by_id(Path(pred))
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
            cases.add(image_id, pred_mask, truth_mask, metrics=rows[-1])
    return EvalReport(
        f"{pred} against {truth}", Path(pred).name, rows, summarise(rows), cases=cases, unmatched_predictions=unmatched
    )
