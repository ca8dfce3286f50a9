"""`skinseg segment` over many files: inputs and outputs checked first, decoding of the next batch in threads
while the model works on the current one, every failure reported and the rest going on."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from skinseg.data.images import load_mask, load_rgb
from skinseg.errors import Interrupted, SkinsegError
from skinseg.fileio import OutputExists, check_name_length, interrupts_held, remove_temporaries
from skinseg.inference.config import EXCLUSIVE_WRITES, SegmentConfig, how_to_continue
from skinseg.inference.outputs import CropWriter, MaskWriter, Segmented, Writer, crop_writer, writers_for
from skinseg.inference.pipeline import segmented_images
from skinseg.inference.segmenter import Segmenter, segmenter_for
from skinseg.inference.summary import SummaryWriter, continued_rows, summary_columns, summary_row
from skinseg.inputs import OUTPUT_NAMES, collect_inputs, named_like_output, one_input_per_mask, output_paths
from skinseg.plan import Plan
from skinseg.reporting.callbacks import Notes, Progress, no_notes, no_progress
from skinseg.reporting.html import HTML_SUFFIXES
from skinseg.runtime.distributed import env_rank_world
from skinseg.runtime.threads import blas_on_one_thread


@dataclass
class SegmentResult:
    output: Path
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    existing: list[Path] = field(default_factory=list)  # skipped with skip_existing: their outputs are there
    completed: list[Path] = field(default_factory=list)  # skip_existing: the mask was there, the other outputs added
    ignored: list[Path] = field(default_factory=list)  # mask files in input folders, not segmented
    named_like_outputs: list[Path] = field(default_factory=list)  # inputs named as masks and outputs are: segmented
    repeated: list[tuple[Path, Path]] = field(default_factory=list)  # (input, the one it is: segmented once)
    uncropped: list[Path] = field(default_factory=list)  # `crops`: no lesion found, so no crop
    cropped: list[Path] = field(default_factory=list)  # `crops`: the images whose crop was written
    coco: Path | None = None  # the COCO file written (FILE.rankR.json under torchrun)
    report: Path | None = None  # the page written
    summary: Path | None = None  # the summary written or continued (FILE.rankR.csv under torchrun)


# An input image named as a mask or an output is: the shell expanded an unquoted pattern into such files.
LIKE_AN_OUTPUT = " (named like a mask or an output: give the folder or quote the pattern to leave such files out)"


def _rank_share(items: list) -> tuple[list, int, int]:
    """Under torchrun, each rank takes every WORLD_SIZE-th input."""
    rank, world = env_rank_world()
    return items[rank::world], rank, world


def _outputs_of(writers: list[Writer], source: Path, target: Path) -> list[Path]:
    """The files one image gives from its segmentation: its mask, and its overlay and probability map when asked
    for. (Its crop is cut from its mask, so a crop that is missing does not make an image be segmented again.)"""
    return [writer.path(source, target) for writer in writers if writer.from_segmentation]


def _cut_from_mask(writers: list[Writer], source: Path, target: Path) -> list[Path]:
    return [writer.path(source, target) for writer in writers if not writer.from_segmentation]


@dataclass
class SegmentPlan:
    """What one `segment` call reads and writes, checked before the model is loaded."""

    todo: list[tuple[Path, Path]]  # (image, mask file) to segment
    summary: Path | None
    report: Path | None
    coco: Path | None = None
    left: set[Path] = field(default_factory=set)  # outputs there already, left as they are (`skip_existing`)
    existing: list[tuple[Path, Path]] = field(default_factory=list)  # (image, mask) skipped: all there
    files: Plan = field(default_factory=lambda: Plan("segment"))  # every file read and written, checked
    writers: list[Writer] = field(default_factory=list)  # one per file an image gives (inference.outputs)
    tidy: Path | None = None  # the folder of masks this command holds: a killed one's temporaries are removed


def _files_plan(
    config: SegmentConfig,
    writers: list[Writer],
    inputs: list[Path],
    pairs: list[tuple[Path, Path]],
    summary: Path | None,
    report: Path | None,
    coco: Path | None,
    world: int,
) -> Plan:
    """The images and the model read; the summary (continued by `skip_existing`), the report and every image's
    outputs written, the folder of masks locked unless torchrun's `world` of processes shares it. Whether an
    image's existing outputs are replaced, kept or reported is decided image by image (plan_segmentation), so
    the plan judges only that none is an input."""
    plan = Plan("segment", config.overwrite)
    for path in inputs:
        plan.read(path, f"input image{LIKE_AN_OUTPUT if named_like_output(path) else ''}")
    if (model := config.run.user_model) is not None:
        plan.read(model, "model")
    if config.output not in [target for _, target in pairs]:  # a folder of masks, held by one command at a time
        plan.write(config.output, "`output`", folder=True, lock=world == 1)
    if summary is not None:
        plan.write(summary, "`summary`", continued=config.skip_existing, lock=True)
    if report is not None:
        # `skip_existing` makes the page anew, with the images of this run
        plan.write(report, "`report`", continued=config.skip_existing, lock=True, suffixes=HTML_SUFFIXES)
    if config.crops is not None:
        plan.write(config.crops, "`crops`", folder=True)
    if coco is not None:  # written whole at the end, with the masks kept by `skip_existing` too
        plan.write(coco, "`coco`", continued=config.skip_existing, lock=True, suffixes=(".json",))
    for source, target in pairs:
        for path in (writer.path(source, target) for writer in writers):
            plan.write(path, "mask" if path == target else "output", continued=True)
    return plan


def plan_segmentation(config: SegmentConfig, result: SegmentResult) -> SegmentPlan:
    """Every output is checked before the model is loaded: none may be an input (not even with `overwrite`);
    an image whose outputs exist is skipped (with `skip_existing`), replaced (with `overwrite`) or reported."""
    if config.skip_existing and config.overwrite:
        raise SkinsegError(EXCLUSIVE_WRITES)
    inputs = collect_inputs(config.inputs, result.ignored, result.repeated, result.named_like_outputs)
    pairs, clashes = one_input_per_mask(list(zip(inputs, output_paths(inputs, config.output), strict=True)))
    result.failed += clashes
    pairs, rank, world = _rank_share(pairs)
    report = _rank_path(config.report, rank, world) if config.report else None
    summary = _rank_path(config.summary, rank, world) if config.summary else None
    coco = _rank_path(config.coco, rank, world) if config.coco else None
    if summary and summary.suffix.lower() not in (".csv", ".json"):
        raise SkinsegError("a summary is CSV or JSON, by its suffix: name it .csv or .json", summary)
    writers = writers_for(config)
    pairs = _names_that_fit(pairs, writers, result)
    files = _files_plan(config, writers, inputs, pairs, summary, report, coco, world)
    files.check()
    if summary is not None and config.skip_existing and summary.exists():
        _check_continued(summary, config.measure)  # one that cannot be continued: said now
    todo: list[tuple[Path, Path]] = []
    existing: list[tuple[Path, Path]] = []
    left: set[Path] = set()
    for source, target in pairs:
        outputs = _outputs_of(writers, source, target)
        there = [p for p in [*outputs, *_cut_from_mask(writers, source, target)] if p.exists()]
        if config.skip_existing and all(p.exists() for p in outputs):  # a missing crop is cut from the kept mask
            result.existing.append(source)
            existing.append((source, target))
        elif there and not (config.overwrite or config.skip_existing):
            hint = "`overwrite` to replace it or `skip_existing` to leave it"
            result.failed.append((source, f"output {there[0]} exists (use {hint})"))
        else:
            todo.append((source, target))
            left.update(there if config.skip_existing else ())  # the outputs missing are written, the rest left
    tidy = config.output if any(o.lock and o.path == config.output for o in files.outputs) else None
    return SegmentPlan(todo, summary, report, coco, left, existing, files, writers, tidy)


def _names_that_fit(pairs: list[tuple[Path, Path]], writers: list[Writer], result: SegmentResult) -> list:
    """The pairs whose every output name the file system takes; the others skipped and said, before anything
    else looks at their files (a name too long cannot even be asked whether it exists)."""
    limits: dict[Path, int] = {}
    kept = []
    for source, target in pairs:
        try:
            for path in (writer.path(source, target) for writer in writers):
                check_name_length(path, limits)
        except SkinsegError as exc:
            result.failed.append((source, f"its output {exc}"))
            continue
        kept.append((source, target))
    return kept


def _coco_file():
    """A CocoFile, imported only when `coco` asks for one: its polygon tracing pulls in scipy.signal (about 0.9 s
    of a cold `skinseg segment one.jpg` on a 2-core AMD EPYC)."""
    from skinseg.inference.coco import CocoFile

    return CocoFile()


def segment_paths(
    config: SegmentConfig, on_progress: Progress | None = None, on_notes: Notes | None = None
) -> SegmentResult:
    """Segment every input image; unreadable ones are reported and the rest go on. `on_notes(notes)`: settings
    asked for but ignored or emulated, once the model is loaded; `on_progress(done, total)`: images done. Ctrl-C
    ends it with Interrupted, which says how to continue."""
    result = SegmentResult(config.output)
    plan = plan_segmentation(config, result)
    try:
        with plan.files.hold():  # a second segment writing these outputs: refused before the model loads
            if plan.tidy is not None:
                remove_temporaries(plan.tidy, OUTPUT_NAMES)
            _segment_planned(config, plan, result, on_progress or no_progress, on_notes or no_notes)
    except KeyboardInterrupt:
        done = len(result.written) + len(result.completed)
        raise Interrupted(
            f"interrupted after {done} of {len(plan.todo)} images, whose files are whole: "
            + how_to_continue(config.overwrite, "segments the rest")
        ) from None
    return result


def _check_continued(summary: Path, measure: bool) -> None:
    """A summary that `skip_existing` continues has this command's columns; one written with the other value of
    `measure` is refused with the setting that would continue it."""
    try:
        continued_rows(summary, summary_columns(measure))
        return
    except SkinsegError as exc:
        refused = exc
    try:
        continued_rows(summary, summary_columns(not measure))
    except SkinsegError:
        raise refused from None
    was = "with" if not measure else "without"
    raise SkinsegError(f"was written {was} `measure`: continue it {was} `measure`, or give another `summary`", summary)


def _segment_planned(config: SegmentConfig, plan: SegmentPlan, result: SegmentResult, advance, on_notes) -> None:
    """The work of segment_paths, with its plan checked and its outputs held."""
    from skinseg.reporting.html import ReportCases

    segmenter = segmenter_for(config.run)
    on_notes(segmenter.notes)
    cases = ReportCases(config.report_max_cases) if plan.report else None
    coco = _coco_file() if plan.coco else None
    failed_before = len(result.failed)  # outputs that exist: reported, not segmented
    whole = config.overlay or plan.report is not None or config.measure or config.crops is not None
    with (
        blas_on_one_thread() if config.measure else contextlib.nullcontext(),  # measured beside the model's threads
        SummaryWriter(plan.summary, config.skip_existing, summary_columns(config.measure)) as rows_out,
        contextlib.closing(
            segmented_images(segmenter, [s for s, _ in plan.todo], config.run.batch_size, whole, result.failed)
        ) as segmented,  # ends its threads
    ):
        advance(0, len(plan.todo))
        target_of = dict(plan.todo)
        for source, image, prob, mask, seconds in segmented:
            target = target_of[source]
            if target in plan.left and (config.crops or plan.coco or config.measure):
                try:  # `skip_existing` kept the mask: the crop, the COCO entry and the measurements follow it
                    mask = load_mask(target)
                except SkinsegError as exc:
                    result.failed.append((source, f"its kept mask cannot be read: {exc}"))
                    continue
            measures = _measures(config, source, image, mask, prob, segmenter.threshold, result)
            with interrupts_held():  # a mask is never written without its summary row
                if not _write_outputs(plan, Segmented(source, target, image, prob, mask), result):
                    continue
                result.rows.append({**summary_row(source, target, mask, prob, seconds), **measures})
                rows_out.add(result.rows[-1])
                (result.completed if target in plan.left else result.written).append(target)
            if cases is not None:
                cases.add(
                    source.name,
                    mask,
                    image=image,
                    probability=prob,
                    threshold=segmenter.threshold,
                    measures=measures,
                )
            if coco is not None:
                coco.add(source.name, mask)
            advance(len(result.written) + len(result.completed) + len(result.failed) - failed_before, len(plan.todo))
        advance(len(plan.todo), len(plan.todo))  # and the unreadable images of the last batch
    if plan.summary is not None and plan.summary.exists():  # a summary of no rows is not left behind
        result.summary = plan.summary
    _write_collected(config, plan, segmenter, result, cases, coco)


def _measures(config: SegmentConfig, source: Path, image, mask, prob, threshold: float, result) -> dict:
    """With `measure`, the lesion's measurements (skinseg measure's columns, without its id), else none. An image
    whose measurement fails keeps its mask and a row with the measurements empty, and is reported."""
    if not config.measure or image is None:
        return {}
    from skinseg.measurement import MEASURE_COLUMNS, measure_lesion  # scipy and scikit-image: only when asked for

    try:
        row = measure_lesion(
            image,
            mask,
            pixel_size=config.pixel_size,
            probability=prob,
            threshold=threshold,
            one_lesion=config.run.postprocess,
        )
    except Exception as exc:  # one image's failure, whatever it is, is reported and the batch goes on
        result.failed.append((source, f"segmented, but could not be measured: {type(exc).__name__}: {exc}"))
        row = dict.fromkeys(MEASURE_COLUMNS)
    return {key: value for key, value in row.items() if key != "id"}


def _write_collected(config: SegmentConfig, plan: SegmentPlan, segmenter: Segmenter, result, cases, coco) -> None:
    """What is written once all images are done: the COCO file (with the masks that `skip_existing` kept) and
    the report."""
    from skinseg.reporting.html import segment_page, write_page

    cropper = crop_writer(plan.writers)
    for source, target in plan.existing if coco is not None or cropper is not None else []:
        try:
            mask = load_mask(target)
            if cropper is not None and not cropper.path(source, target).exists():
                _write_crop(cropper, Segmented(source, target, load_rgb(source), None, mask), result)
        except SkinsegError as exc:
            result.failed.append((source, f"kept by `skip_existing`, but not read again for `coco` or `crops`: {exc}"))
            continue
        if coco is not None:
            coco.add(source.name, mask)
    if coco is not None and plan.coco is not None and coco.images:  # none where every image failed
        coco.write(plan.coco)
        result.coco = plan.coco
    if plan.report and cases is not None and cases.rows:
        facts = [
            ("inputs", " ".join(map(str, config.inputs))),
            ("masks", config.output),
            ("backend", config.run.backend),
        ]
        model_name = str(config.run.model) if config.run.model else None
        page = segment_page(cases, result.failed, [*facts, *segmenter.facts(model_name)])
        write_page(plan.report, page, config.overwrite or config.skip_existing)
        result.report = plan.report


def _write_outputs(plan: SegmentPlan, item: Segmented, result: SegmentResult) -> bool:
    """The files of one image, each by its writer (the mask, and the overlay, probability map and crop where asked
    for); none that the plan keeps. An image without a lesion has no crop: it goes to `result.uncropped`. A file
    that another command wrote meanwhile is left as it is and reported; False where that is the mask (the image
    then has no row: its mask is not this command's)."""
    for writer in plan.writers:
        if writer.path(item.source, item.target) in plan.left or (writer.needs_image and item.image is None):
            continue
        try:
            if isinstance(writer, CropWriter):
                _write_crop(writer, item, result)
            else:
                writer.write(item)
        except OutputExists as exc:
            result.failed.append((item.source, str(exc)))
            if isinstance(writer, MaskWriter):
                return False
    return True


def _write_crop(cropper: CropWriter, item: Segmented, result: SegmentResult) -> None:
    """The lesion's crop, or, without a lesion, the image in `result.uncropped`."""
    (result.cropped if cropper.write(item) else result.uncropped).append(item.source)


def _rank_path(path: Path, rank: int, world: int) -> Path:
    """Under torchrun, each rank writes FILE.rankR.suffix."""
    return path if world == 1 else path.with_name(f"{path.stem}.rank{rank}{path.suffix}")
