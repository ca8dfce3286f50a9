"""EvaluateConfig: the settings of `skinseg evaluate` for a model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skinseg.errors import check_setting


@dataclass(frozen=True)
class EvaluateConfig:
    model: Path | None
    data: Path
    split: str | None = None  # train, val, test or all; None: data.sources.default_split
    device: str = "auto"
    batch_size: int = 16
    threshold: float | None = None
    tta: bool = False
    postprocess: bool = True  # measured: +0.0035 val Dice, +0.0025 test Dice (docs/model-card.md)
    precision: str = "auto"
    split_seed: int = 0  # for a raw --data folder: the split it was prepared with

    def __post_init__(self) -> None:
        from skinseg.data.sources import SPLIT_CHOICES

        check_setting(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        check_setting(
            self.split in (None, *SPLIT_CHOICES),
            f"unknown split '{self.split}'; choose one of {', '.join(SPLIT_CHOICES)}",
        )
