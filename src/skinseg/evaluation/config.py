"""EvaluateConfig: the settings of `skinseg evaluate` for a model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skinseg.errors import check_at_least, check_setting


@dataclass(frozen=True)
class EvaluateConfig:
    """One evaluation: a model on one or more data sets (`data`, then `more_data`), or masks already made
    (`pred` against `truth`); and the report files it writes."""

    model: Path | None = None
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
    device: str = "auto"
    batch_size: int = 16
    threshold: float | None = None
    tta: bool = False
    postprocess: bool = True  # measured: +0.0035 val Dice, +0.0025 test Dice (docs/model-card.md)
    precision: str = "auto"
    split_seed: int = 0  # for a raw data folder: the split it was prepared with

    def __post_init__(self) -> None:
        from skinseg.data.sources import SPLIT_CHOICES

        check_at_least("report_max_cases", self.report_max_cases, 0)
        check_at_least("batch_size", self.batch_size, 1)
        check_setting(
            self.split in (None, *SPLIT_CHOICES),
            f"unknown split '{self.split}'; choose one of {', '.join(SPLIT_CHOICES)}",
        )

    @property
    def data_sets(self) -> tuple[Path, ...]:
        return (Path(self.data), *map(Path, self.more_data)) if self.data is not None else ()
