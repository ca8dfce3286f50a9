"""SegmentConfig: the settings of `skinseg segment`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from skinseg.errors import check_at_least, check_between, check_finite, check_pixel_size, check_setting
from skinseg.fileio import paths_from_text
from skinseg.inference.model_run import ModelRun

CROP_MARGIN = 0.1  # the default margin around a lesion crop
MAX_CROP_MARGIN = 10.0  # ten times the lesion's box on each side: far past any image (1e308 overflowed)
MAX_CROP_SIZE = 8192  # pixels: a crop's longer side; 8192 x 8192 RGB is 200 MB (100000 took 24 GB and was killed)


EXCLUSIVE_WRITES = "`skip_existing` and `overwrite` exclude each other: give one"


def how_to_continue(overwrite: bool, rest: str) -> str:
    """What an interrupted batch advises: the same command with `skip_existing` (in place of `overwrite`, which
    it excludes) does `rest`."""
    return f"the same command with `skip_existing`{' in place of `overwrite`' if overwrite else ''} {rest}"


@dataclass(frozen=True)
class SegmentConfig:
    inputs: tuple[Path, ...]
    output: Path
    run: ModelRun = field(default_factory=ModelRun)  # the model and how it runs
    overwrite: bool = False
    skip_existing: bool = False  # leave images whose outputs exist (counted, not failures)
    overlay: bool = False
    probabilities: bool = False
    summary: Path | None = None
    report: Path | None = None  # an HTML page of the results (skinseg.reporting.html)
    report_max_cases: int = 500  # rows with an image in it: the most uncertain
    measure: bool = False  # the measurements of `skinseg measure` in the summary and the report
    crops: Path | None = None  # a folder of lesion crops (<stem>_crop.png)
    crop_margin: float = CROP_MARGIN  # added on each side, as a fraction of the lesion box's width and height
    crop_size: int | None = None  # the crop resized so that its longer side is this many pixels
    crop_square: bool = False  # the crop widened to a square around the lesion (as far as the image allows)
    coco: Path | None = None  # the masks as COCO instance annotations (JSON)
    pixel_size: float | None = None  # mm per pixel, for the _mm columns of `measure`

    def __post_init__(self) -> None:
        paths_from_text(self)
        check_at_least("report_max_cases", self.report_max_cases, 0)
        check_finite("crop_margin", self.crop_margin)
        check_between("crop_margin", self.crop_margin, 0, MAX_CROP_MARGIN)
        if self.crop_size is not None:
            check_between("crop_size", self.crop_size, 1, MAX_CROP_SIZE)
        crop_options = self.crop_size is not None or self.crop_square or self.crop_margin != CROP_MARGIN
        check_setting(
            self.crops is not None or not crop_options, "`crop_size`, `crop_square`, `crop_margin` need `crops`"
        )
        wanted = self.summary is not None or self.report is not None
        check_setting(not self.measure or wanted, "`measure` adds columns to `summary` and `report`: give one")
        check_setting(self.pixel_size is None or self.measure, "`pixel_size` goes with `measure`")
        check_pixel_size(self.pixel_size)


@dataclass(frozen=True)
class ExportConfig:
    """The settings of `skinseg export`: the model of `run` written as ONNX to `out`."""

    run: ModelRun
    out: Path
    opset: int = 18
    overwrite: bool = False

    def __post_init__(self) -> None:
        paths_from_text(self)


@dataclass(frozen=True)
class MeasureConfig:
    """The settings of `skinseg measure`: the lesions of `inputs` measured on the masks in `masks` (paired by
    name), or on the model's masks when it is None; the rows written to `csv_file` and/or `json_file`."""

    inputs: tuple[Path, ...]
    masks: Path | None = None
    pixel_size: float | None = None  # mm per pixel: the _mm columns
    csv_file: Path | None = None
    json_file: Path | None = None
    report: Path | None = None
    report_max_cases: int = 500
    overwrite: bool = False
    skip_existing: bool = False  # images with a row in `csv_file`/`json_file` left; the rest measured and appended
    run: ModelRun = field(default_factory=ModelRun)  # the model and how it runs, as segment's (used without masks)

    def __post_init__(self) -> None:
        paths_from_text(self)
        outputs = (self.csv_file, self.json_file, self.report)
        check_setting(any(p is not None for p in outputs), "give `csv_file`, `json_file` or `report` (or several)")
        given = self.run.given()
        check_setting(
            self.masks is None or not given,
            f"{', '.join(given)} set how the model segments; with `masks` the given masks are measured: drop one",
        )
        check_pixel_size(self.pixel_size)
        check_at_least("report_max_cases", self.report_max_cases, 0)
        check_setting(not (self.skip_existing and self.overwrite), EXCLUSIVE_WRITES)
        rows_kept = self.csv_file is not None or self.json_file is not None
        check_setting(
            not self.skip_existing or rows_kept, "`skip_existing` continues `csv_file` or `json_file`: give one"
        )
