"""`adapt`: fit a model to a site's labelled images, decided by cross-validation on them, never silently worse.

One call reads top to bottom:

1. plan: the data and the starting model are read, the model file (and JSON, report) written; checked first;
2. read the labelled images (`examples.load_examples`) and the starting model;
3. score the starting model on every image at every setting: threshold and boundary offset (`scoring`);
4. cross-validate: per fold, the setting and a fine-tune (`finetune`, where the time budget allows one) fitted
   on the other folds;
5. choose (`crossval.choose`): a fine-tuned model, the starting model calibrated, or the starting model as it is;
6. fit the chosen candidate on all the images and write it, its metadata saying where it came from.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from skinseg import __version__
from skinseg.adaptation import crossval
from skinseg.adaptation.config import AdaptConfig
from skinseg.adaptation.examples import Examples, load_examples
from skinseg.adaptation.finetune import Recipe, finetune
from skinseg.adaptation.scoring import Setting, probabilities, settings_table, settings_with
from skinseg.errors import Interrupted
from skinseg.fileio import cache_root, file_sha256
from skinseg.inference.postprocess import offset_boundary, postprocess_mask
from skinseg.models.layers import SegmentationModel
from skinseg.models.reference import BUNDLED, is_bundled, user_model
from skinseg.models.weights import ModelInfo, load_model, model_file, save_model
from skinseg.plan import Plan
from skinseg.reporting.figures import shrink
from skinseg.reporting.html import HTML_SUFFIXES
from skinseg.runtime.device import resolve_device
from skinseg.runtime.precision import Precision, resolve_precision

# adapt's on_progress(stage, done, total), with the stage it is in: "read", "score", "fold 1/5" ..., "final" (the
# other commands' reporting.callbacks.Progress has no stage: adapt's work is several passes over the images)
StageProgress = Callable[[str, int, int], None]
REPORT_SIDE = 320  # the longer side of the report's pictures
MIN_STEPS = 30  # a fine-tune cut below this by the time budget is not tried
SCORING_SHARE = 0.15  # of the time budget kept for scoring the folds and writing


@dataclass
class AdaptResult:
    out: Path
    chosen: str  # crossval.CANDIDATES
    threshold: float
    boundary_offset: float
    images: int
    skipped: list[tuple[Path, str]]
    estimates: list[crossval.Estimate]
    recipe: Recipe | None  # None: no fine-tune was tried (notes say why)
    seconds: float
    notes: list[str] = field(default_factory=list)
    cases: list[dict] = field(default_factory=list)  # per image: id, image, before, after (out-of-fold Dice)
    metadata: dict = field(default_factory=dict)


def plan_adapt(config: AdaptConfig) -> Plan:
    plan = Plan("adapt", config.overwrite)
    plan.read_data_set(config.data)
    if (model := user_model(config.model)) is not None:
        plan.read(model, "model")
    plan.write(config.out, "`out`", lock=True, suffixes=(".safetensors",))
    if config.json_file is not None:
        plan.write(config.json_file, "`json_file`", lock=True, suffixes=(".json",))
    if config.report is not None:
        plan.write(config.report, "`report`", lock=True, suffixes=HTML_SUFFIXES)
    return plan


def recipe_for(count: int, folds: int) -> Recipe:
    """The fine-tune for `count` labelled images in `folds` folds: about 30 passes over a fold's training
    images, at most 300 steps."""
    trained_on = count * (folds - 1) / folds
    return Recipe(trained="all", lr=1e-4, steps=min(300, max(30, round(30 * trained_on / 8))), batch_size=8)


def adapt(config: AdaptConfig, on_progress: StageProgress | None = None) -> AdaptResult:
    """Fit the model of `config` to its data, or keep it where no gain is sure, and write it to `config.out`
    (docs/adapt.md). `on_progress(stage, done, total)`: the stage ("read", "score", "fold 1/5" ..., "final") and
    its images or steps done. Ctrl-C ends it with Interrupted, before anything is written."""
    started = time.monotonic()
    progress = on_progress or (lambda stage, done, total: None)
    plan = plan_adapt(config)
    plan.check()
    with plan.hold():
        device = resolve_device(config.device)
        start, info = load_model(config.model, device)
        precision = resolve_precision(config.precision, device, job="train", size=info.input_size)
        precision_notes = list(precision.notes)
        try:
            examples = load_examples(
                config.data, info.input_size, cache_root() / "adapt-unzipped", lambda d, t: progress("read", d, t)
            )
            run = _CrossValidation(config, start, info, examples, precision, progress, started)
            result = run.decide()
        except KeyboardInterrupt:
            raise Interrupted(
                "interrupted before anything was written (`out`, `json_file` and `report` are written at the end):"
                " the same command starts it again"
            ) from None
        result.notes[:0] = precision_notes
        _write_outputs(config, result, run)
    result.seconds = time.monotonic() - started
    return result


class _CrossValidation:
    """The figures of every candidate on one set of examples, and the model the chosen one writes."""

    def __init__(
        self,
        config: AdaptConfig,
        start: SegmentationModel,
        info: ModelInfo,
        examples: Examples,
        precision: Precision,
        progress: StageProgress,
        started: float,
    ):
        self.config, self.start, self.info, self.examples = config, start, info, examples
        self.precision, self.progress, self.started = precision, progress, started
        device = next(start.parameters()).device
        self.normalisation = (
            torch.tensor(info.mean, device=device).view(1, 3, 1, 1),
            torch.tensor(info.std, device=device).view(1, 3, 1, 1),
        )
        self.fold = crossval.folds_of(len(examples), min(config.folds, len(examples)), config.seed)
        self.folds = int(self.fold.max()) + 1
        self.settings = settings_with(info.threshold, info.boundary_offset)
        self.own = self.settings.index((info.threshold, info.boundary_offset))
        self.notes: list[str] = []
        self.small: dict[str, dict[int, np.ndarray]] = {}  # per model, per image: probabilities for the report
        self.picked: dict[str, list[Setting]] = {}  # per candidate, per image: the setting it was scored at

    def _table(self, model: SegmentationModel, rows: np.ndarray, name: str) -> np.ndarray:
        """Per-image Dice at every setting of the images `rows`; their probabilities kept small for the report
        as model `name`'s."""
        truths = [self.examples.truths[i] for i in rows]
        shapes = [truth.shape for truth in truths]
        probs = probabilities(model, self.examples.inputs[rows], shapes, self.normalisation, self.precision)
        kept = self.small.setdefault(name, {})
        for row, prob in zip(rows, probs, strict=True):
            kept[int(row)] = shrink(prob, REPORT_SIDE).astype(np.float16)
        return settings_table(probs, truths, self.settings)

    def decide(self) -> AdaptResult:
        """Every candidate's out-of-fold Dice per image, the choice, and the chosen model fitted on all images."""
        everyone = np.arange(len(self.examples))
        self.progress("score", 0, 1)
        tables = {crossval.CALIBRATED: self._table(self.start, everyone, crossval.UNCHANGED)}
        self.progress("score", 1, 1)
        unchanged = tables[crossval.CALIBRATED][self.own]
        scores = {crossval.UNCHANGED: unchanged}
        self.picked[crossval.UNCHANGED] = [self.settings[self.own]] * len(everyone)
        recipe, per_step = self._affordable_recipe()
        fine_tuned = self._fine_tuned_table(recipe, per_step) if recipe is not None else None
        if fine_tuned is not None:
            tables[crossval.FINE_TUNED] = fine_tuned
        else:
            recipe = None
        for name, table in tables.items():
            scores[name], self.picked[name] = crossval.out_of_fold_setting(
                table, self.fold, self.settings, self.settings[self.own]
            )
        compared = len(scores) - 1
        estimates = [crossval.estimate(name, values, unchanged, compared) for name, values in scores.items()]
        self.chosen = chosen = crossval.choose(estimates).name
        self.model: SegmentationModel = self.start
        threshold, offset = self.settings[self.own]
        if chosen != crossval.UNCHANGED:
            threshold, offset = crossval.best_setting(tables[chosen], self.settings, self.settings[self.own])
        if chosen == crossval.FINE_TUNED and recipe is not None:
            self.model = self._fine_tune(recipe, everyone, self.config.seed, "final")
        cases = [
            {
                "row": int(i),
                "id": self.examples.ids[i],
                "image": str(self.examples.images[i]),
                "before": round(float(unchanged[i]), 4),
                "after": round(float(scores[chosen][i]), 4),
            }
            for i in everyone
        ]
        return AdaptResult(
            out=self.config.out,
            chosen=chosen,
            threshold=threshold,
            boundary_offset=offset,
            images=len(everyone),
            skipped=self.examples.skipped,
            estimates=estimates,
            recipe=recipe,
            seconds=0.0,
            notes=self.notes,
            cases=sorted(cases, key=lambda c: c["after"]),
        )

    def _fine_tune(
        self, recipe: Recipe, rows: np.ndarray, seed: int, stage: str, tick: Callable[[], None] | None = None
    ) -> SegmentationModel:
        inputs, masks = self.examples.inputs[rows], self.examples.masks[rows]

        def on_step(done: int, total: int) -> None:
            self.progress(stage, done, total)
            if tick is not None:
                tick()

        return finetune(self.start, inputs, masks, self.normalisation, recipe, self.precision, seed, on_step)

    def pictures(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """An image's out-of-fold masks before and after (as the chosen candidate), and its truth, at report
        size."""
        source = crossval.FINE_TUNED if self.chosen == crossval.FINE_TUNED else crossval.UNCHANGED
        masks = []
        for name, probs in ((crossval.UNCHANGED, crossval.UNCHANGED), (self.chosen, source)):
            threshold, offset = self.picked[name][row]
            mask = postprocess_mask(self.small[probs][row].astype(np.float32) > threshold)
            masks.append(offset_boundary(mask, offset))
        return masks[0], masks[1], shrink(self.examples.truths[row], REPORT_SIDE)

    def _affordable_recipe(self) -> tuple[Recipe | None, float]:
        """The fine-tune for this many images with its steps cut to what the time budget leaves for every fold
        and the final fit, and the seconds a step took when timed; None (with a note) where that leaves fewer
        than MIN_STEPS."""
        recipe = recipe_for(len(self.examples), self.folds)
        timings: list[float] = []
        self._fine_tune(
            replace(recipe, steps=4),
            np.arange(len(self.examples)),
            self.config.seed,
            "timing",
            lambda: timings.append(time.monotonic()),
        )
        per_step = (timings[-1] - timings[0]) / (len(timings) - 1)  # the first step's setup left out
        left = self.config.time_budget * (1 - SCORING_SHARE) - (time.monotonic() - self.started)
        steps = min(recipe.steps, int(left / (per_step * (self.folds + 1))))
        if steps < MIN_STEPS:
            self.notes.append(
                f"no fine-tune tried: the time budget leaves {max(steps, 0)} steps for each of {self.folds + 1}"
                f" fine-tunes, fewer than {MIN_STEPS} ({per_step:.2f} s a step here); give more `time_budget`"
            )
            return None, per_step
        if steps < recipe.steps:
            self.notes.append(f"fine-tunes cut to {steps} steps (of {recipe.steps}) to fit the time budget")
        return replace(recipe, steps=steps), per_step

    def _fine_tuned_table(self, recipe: Recipe, per_step: float) -> np.ndarray | None:
        """Per-image Dice at every setting of the models fine-tuned without each image's fold; None (with a
        note) where the folds run so late that the final fit would overrun the time budget."""
        table = np.empty((len(self.settings), len(self.examples)))
        for f in range(self.folds):
            left = self.config.time_budget - (time.monotonic() - self.started)
            if left < (self.folds - f + 1) * recipe.steps * per_step:
                self.notes.append(f"fine-tune left out after {f} of {self.folds} folds: the time budget ran short")
                return None
            held, kept = np.flatnonzero(self.fold == f), np.flatnonzero(self.fold != f)
            model = self._fine_tune(recipe, kept, self.config.seed + f, f"fold {f + 1}/{self.folds}")
            table[:, held] = self._table(model, held, crossval.FINE_TUNED)
        return table


def _metadata(config: AdaptConfig, result: AdaptResult, run: _CrossValidation) -> dict:
    """What the written model says of where it came from (its metadata's training entry, key 'adapted')."""
    start_file = model_file(config.model)
    return {
        "start_model": BUNDLED if is_bundled(config.model) else str(config.model),
        "start_model_sha256": file_sha256(start_file),
        "data": str(config.data),
        "data_fingerprint": run.examples.fingerprint,
        "images": result.images,
        "skipped": len(result.skipped),
        "chosen": result.chosen,
        "threshold": result.threshold,
        "boundary_offset": result.boundary_offset,
        "recipe": result.recipe.to_dict() if result.recipe else None,
        "folds": run.folds,
        "seed": config.seed,
        "cross_validation": {e.name: e.to_dict() for e in result.estimates},
        "precision": run.precision.name,
        "time_budget": config.time_budget,
        "skinseg_version": __version__,
    }


def _write_outputs(config: AdaptConfig, result: AdaptResult, run: _CrossValidation) -> None:
    """Every output made in memory first, then written, each atomically: a failure leaves no part of them."""
    import json

    from skinseg.fileio import interrupts_held, write_text

    result.metadata = _metadata(config, result, run)
    training = {**run.info.training, "adapted": result.metadata}
    info = replace(
        run.info,
        threshold=result.threshold,
        boundary_offset=result.boundary_offset,
        training=training,
        version=__version__,
    )
    texts = {}
    if config.json_file is not None:
        texts[config.json_file] = json.dumps(
            {**result.metadata, "cases": result.cases, "notes": result.notes}, indent=2
        )
    if config.report is not None:
        from skinseg.adaptation.report import adapt_page

        texts[config.report] = adapt_page(result, run.pictures)
    with interrupts_held():  # all of them or, interrupted before, none
        save_model(run.model, config.out, info)
        for path, text in texts.items():
            write_text(path, text)
