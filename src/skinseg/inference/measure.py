"""`skinseg measure`: each image's lesion measured (skinseg.measurement) on the mask given for it, or on the
model's, and written as one row per image to CSV and/or JSON as each image is done."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skinseg.data.images import binarise, load_rgb, not_binary, read_mask_grey
from skinseg.errors import Interrupted, SkinsegError
from skinseg.fileio import interrupts_held
from skinseg.inference.config import MeasureConfig, how_to_continue
from skinseg.inference.summary import SummaryWriter, rows_of
from skinseg.inputs import MASK_NAMES, collect_inputs, mask_files_by_id
from skinseg.measurement import MEASURE_COLUMNS, TINY_DIAMETER, measure_lesion
from skinseg.plan import Plan
from skinseg.reporting.callbacks import Progress, no_progress
from skinseg.reporting.html import HTML_SUFFIXES
from skinseg.runtime.threads import blas_on_one_thread, in_order, thread_count

# Every column of a row: the measurements, then where the image and its mask came from.
ROW_COLUMNS = (*MEASURE_COLUMNS, "image", "mask")


@dataclass
class MeasureResult:
    rows: list[dict] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)  # mask files in input folders, not measured
    named_like_outputs: list[Path] = field(default_factory=list)  # inputs named as masks and outputs are: measured
    existing: list[Path] = field(default_factory=list)  # `skip_existing`: images with a row already, left
    unmatched_masks: list[Path] = field(default_factory=list)  # masks in `masks` without an input image

    @property
    def empty(self) -> list[str]:
        """The ids of images with no lesion in their mask."""
        return [row["id"] for row in self.rows if not row["area_px"]]

    @property
    def tiny(self) -> list[str]:
        """The ids of lesions narrower than TINY_DIAMETER pixels (equivalent diameter): measured, but coarsely."""
        return [row["id"] for row in self.rows if row["area_px"] and row["equivalent_diameter_px"] < TINY_DIAMETER]


@dataclass
class MeasurePlan:
    images: list[Path]
    masks: dict[Path, Path]  # image -> its given mask (with `masks`)
    files: Plan
    rows_there: dict[Path, set[str]] = field(default_factory=dict)  # `skip_existing`: each row file's ids


def plan_measurement(config: MeasureConfig, result: MeasureResult) -> MeasurePlan:
    """The images, their masks (paired by name, as evaluate pairs `pred` with `truth`), the model, and the files
    written, checked before any image is read: none is an input, none exists unless `overwrite`."""
    images = collect_inputs(config.inputs, result.ignored, named_like_outputs=result.named_like_outputs)
    seen: dict[str, Path] = {}
    for image in images:  # a row's id is the file's stem: two images of one name would share it
        if seen.setdefault(image.stem, image) != image:
            raise SkinsegError(f"two input images are named {image.stem} ({seen[image.stem]} and {image}): rename one")
    files = Plan("measure", config.overwrite)
    for path, what, suffixes in (*_row_files(config), (config.report, "`report`", HTML_SUFFIXES)):
        if path is not None:  # `skip_existing` continues the rows and makes the page anew
            files.write(path, what, lock=True, suffixes=suffixes, continued=config.skip_existing)
    for image in images:
        files.read(image, "input image")
    masks: dict[Path, Path] = {}
    if config.masks is not None:
        files.read(config.masks, "`masks` folder", folder=True)
        by_id = mask_files_by_id(config.masks)
        for image in images:
            if image.stem in by_id:
                masks[image] = by_id.pop(image.stem)
            else:
                result.failed.append((image, f"no mask for it in {config.masks} ({MASK_NAMES})"))
        result.unmatched_masks = sorted(by_id.values())
    elif (model := config.run.user_model) is not None:
        files.read(model, "model")
    files.check()
    rows_there = _measured_before(config) if config.skip_existing else {}
    done = set.intersection(*rows_there.values()) if rows_there else set()  # a row in every file
    result.existing = [image for image in images if image.stem in done]
    measured = [i for i in images if (config.masks is None or i in masks) and i.stem not in done]
    return MeasurePlan(measured, masks, files, rows_there)


def _row_files(config: MeasureConfig) -> list[tuple[Path | None, str, tuple[str, ...]]]:
    return [(config.csv_file, "`csv_file`", (".csv",)), (config.json_file, "`json_file`", (".json",))]


def _measured_before(config: MeasureConfig) -> dict[Path, set[str]]:
    """The ids with a row in each row file (none in one not made yet): `skip_existing` measures the images that
    lack a row in any of them, and writes each row to the files that lack it. A file that cannot be continued
    is refused now, before any image is read."""
    files = [(path, what) for path, what, _ in _row_files(config) if path is not None]
    return {path: {str(row.get("id")) for row in rows_of(path, ROW_COLUMNS, what)} for path, what in files}


def _given_lesion(source: Path, mask_path: Path, pixel_size: float | None) -> tuple[np.ndarray, np.ndarray, dict] | str:
    """The image, its given mask and its measurements; or why it cannot be measured: the image or mask cannot be
    read, the mask is not binary (a photo given as a mask would be measured as whatever its grey values say) or
    does not agree with the image in size."""
    if os.path.realpath(mask_path) == os.path.realpath(source):
        return "is its own mask in `masks`: give the folder of its masks"
    try:
        image, grey = load_rgb(source), read_mask_grey(mask_path)
    except SkinsegError as exc:
        return str(exc)
    if (problem := not_binary(grey)) is not None:
        return f"{mask_path}: {problem}"
    mask = binarise(grey)
    if image.shape[:2] != mask.shape:
        return f"its mask {mask_path} is {mask.shape[1]}x{mask.shape[0]}, the image {image.shape[1]}x{image.shape[0]}"
    return _lesion_or_why(image, mask, pixel_size=pixel_size)


def _given_lesions(plan: MeasurePlan, result: MeasureResult, pixel_size: float | None) -> Generator[tuple]:
    """(image path, image, mask, measurements) for each image with a given mask, read and measured in threads
    (the two cores measure about 1.1 times as many images as one; decoding overlaps measuring); the others go to
    `result.failed`, in the images' order."""
    work = in_order(lambda source: _given_lesion(source, plan.masks[source], pixel_size), plan.images, thread_count())
    with contextlib.closing(work) as outcomes:  # closed with this generator: no more images started
        yield from _kept(zip(plan.images, outcomes, strict=True), result)


def measure_paths(config: MeasureConfig, on_progress: Progress | None = None) -> MeasureResult:
    """Measure the lesion of every input image; unreadable ones are reported and the rest go on.
    `on_progress(done, total)`: images done. Ctrl-C ends it with Interrupted, which says how to continue."""
    result = MeasureResult()
    plan = plan_measurement(config, result)
    try:
        _measure_planned(config, plan, result, on_progress or no_progress)
    except KeyboardInterrupt:
        done = f"interrupted after {len(result.rows)} of {len(plan.images)} images"
        if not (config.csv_file or config.json_file):  # nothing to continue
            raise Interrupted(f"{done}; no rows kept (no `csv_file` or `json_file`)") from None
        raise Interrupted(
            f"{done}, whose rows are written; {how_to_continue(config.overwrite, 'measures the rest')}"
        ) from None
    return result


def _measure_planned(config: MeasureConfig, plan: MeasurePlan, result: MeasureResult, advance: Progress) -> None:
    """The work of measure_paths, with its plan checked."""
    from skinseg.reporting.html import ReportCases, measure_page, write_page

    cases = ReportCases(config.report_max_cases) if config.report else None
    with plan.files.hold(), blas_on_one_thread(), contextlib.ExitStack() as stack:
        writers = [
            (stack.enter_context(SummaryWriter(path, config.skip_existing, ROW_COLUMNS, what)), path)
            for path, what, _ in _row_files(config)
            if path is not None
        ]
        advance(0, len(plan.images))
        facts, lesions = _lesions(config, plan, result, stack)
        failed_before = len(result.failed)  # images without a mask: not among those measured
        for source, image, mask, measures in lesions:
            row = {"id": source.stem, **measures, "image": str(source), "mask": str(plan.masks.get(source, ""))}
            with interrupts_held():  # a row is written whole to every file (that lacks it: `skip_existing`)
                for writer, path in writers:
                    if source.stem not in plan.rows_there.get(path, ()):
                        writer.add(row)
            result.rows.append(row)
            if cases is not None:
                rank = -1.0 if measures["asymmetry"] is None else measures["asymmetry"]  # no lesion: last
                cases.add(source.stem, mask, image=image, measures=measures, badness=rank)
            advance(len(result.rows) + len(result.failed) - failed_before, len(plan.images))
        advance(len(plan.images), len(plan.images))
        if config.report and cases is not None and cases.rows:
            page = measure_page(cases, result.failed, [("images", " ".join(map(str, config.inputs))), *facts])
            write_page(config.report, page, config.overwrite or config.skip_existing)


def _lesion_or_why(image: np.ndarray, mask: np.ndarray, **options) -> tuple[np.ndarray, np.ndarray, dict] | str:
    """The image, its mask and measure_lesion's measurements of them; or why they could not be measured."""
    try:
        return image, mask, measure_lesion(image, mask, **options)
    except Exception as exc:  # one image's failure, whatever it is, is reported and the batch goes on
        return f"could not be measured: {type(exc).__name__}: {exc}"


def _kept(outcomes: Iterable[tuple[Path, tuple | str]], result: MeasureResult) -> Generator[tuple]:
    """(image path, *outcome) for each (image path, outcome) whose outcome is not why it failed; those go to
    `result.failed`, in the images' order: the batch goes on."""
    for source, outcome in outcomes:
        if isinstance(outcome, str):
            result.failed.append((source, outcome))
        else:
            yield source, *outcome


def _lesions(config: MeasureConfig, plan: MeasurePlan, result: MeasureResult, stack: contextlib.ExitStack):
    """The facts of what the masks are, and (image path, image, mask, measurements) for each image measured."""
    if config.masks is not None:
        measured = stack.enter_context(contextlib.closing(_given_lesions(plan, result, config.pixel_size)))
        return [("masks", str(config.masks))], measured
    from skinseg.inference.pipeline import segmented_images
    from skinseg.inference.segmenter import segmenter_for

    segmenter = segmenter_for(config.run)
    segmented = stack.enter_context(
        contextlib.closing(segmented_images(segmenter, plan.images, config.run.batch_size, True, result.failed))
    )
    options = dict(pixel_size=config.pixel_size, threshold=segmenter.threshold, one_lesion=config.run.postprocess)
    outcomes = (
        (source, _lesion_or_why(image, mask, probability=prob, **options)) for source, image, prob, mask, _ in segmented
    )
    measured = _kept(outcomes, result)
    model_name = str(config.run.model) if config.run.model else None
    return [("masks", "the model's"), *segmenter.facts(model_name)], measured
