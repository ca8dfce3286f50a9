"""EvaluateConfig: the settings of `skinseg evaluate` for a model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from skinseg.errors import check_at_least, check_setting
from skinseg.fileio import paths_from_text
from skinseg.inference.model_run import ModelRun


@dataclass(frozen=True)
class EvaluateConfig:
    """One evaluation: a model on one or more data sets (`data`, then `more_data`), or masks already made
    (`pred` against `truth`); and the report files it writes."""

    run: ModelRun = field(default_factory=lambda: ModelRun(batch_size=16))  # the model and how it runs
    data: Path | None = None
    more_data: tuple[Path, ...] = ()
    pred: Path | None = None  # a folder of predicted masks, scored against `truth`
    truth: Path | None = None
    json_file: Path | None = None
    csv_file: Path | None = None
    figures: Path | None = None  # a folder
    report: Path | None = None  # an HTML page (one per data set when there are several)
    report_max_cases: int = 500
    overwrite: bool = False  # replace existing report files
    split: str | None = None  # train, val, test or all; None: data.sources.default_split
    split_seed: int = 0  # for a raw data folder: the split it was prepared with

    def __post_init__(self) -> None:
        paths_from_text(self)
        from skinseg.data.sources import SPLIT_CHOICES

        check_at_least("report_max_cases", self.report_max_cases, 0)
        check_setting(
            self.split in (None, *SPLIT_CHOICES),
            f"unknown split '{self.split}'; choose one of {', '.join(SPLIT_CHOICES)}",
        )

    @property
    def data_sets(self) -> tuple[Path, ...]:
        return (Path(self.data), *map(Path, self.more_data)) if self.data is not None else ()
