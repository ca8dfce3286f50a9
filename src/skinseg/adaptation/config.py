"""AdaptConfig: the settings of `skinseg adapt`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from skinseg.errors import check_setting
from skinseg.fileio import paths_from_text
from skinseg.runtime.choices import check_device, check_precision

MIN_FOLDS, MAX_FOLDS = 2, 10
DEFAULT_TIME_BUDGET = 300.0  # seconds: the whole adapt, reading and cross-validation included


@dataclass(frozen=True)
class AdaptConfig:
    """Adapt the model `model` (None: the bundled one) to the labelled images of `data`; write it to `out`."""

    data: Path
    out: Path
    model: Path | None = None
    overwrite: bool = False
    folds: int = 5  # the images held out in turn; at most one fold per image
    time_budget: float = DEFAULT_TIME_BUDGET  # seconds; the fine-tunes' steps are cut to fit it
    seed: int = 0  # folds, fine-tuning order and initial state
    device: str = "auto"
    precision: str = "auto"
    json_file: Path | None = None  # the figures and the decision, as JSON
    report: Path | None = None  # an HTML page: cases before and after, worst first

    def __post_init__(self) -> None:
        paths_from_text(self)
        check_device(self.device)
        check_precision(self.precision)
        check_setting(
            MIN_FOLDS <= self.folds <= MAX_FOLDS,
            f"`folds` must be between {MIN_FOLDS} and {MAX_FOLDS}, got {self.folds}",
        )
        check_setting(
            math.isfinite(self.time_budget) and self.time_budget > 0,
            f"`time_budget` must be a number of seconds > 0, got {self.time_budget}",
        )
