"""PrepareConfig: the settings of `skinseg prepare`, checked when it is built."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from skinseg.data.splits import parse_group_by
from skinseg.errors import check_between, check_image_size
from skinseg.fileio import paths_from_text


@dataclass(frozen=True)
class PrepareConfig:
    data: Path
    out: Path
    size: int = 256
    layout: str = "auto"
    mask_suffix: str | None = None
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 0  # the split's seed
    split_file: Path | None = None
    group_by: str | None = None  # "FILE.csv:COLUMN", "none", or None: the layout's own grouping (HAM10000)
    strict: bool = False
    force: bool = False
    workers: int = 0  # 0: one per core, at most 8

    def __post_init__(self) -> None:
        paths_from_text(self)
        check_image_size(self.size)
        if self.group_by not in (None, "none"):
            parse_group_by(self.group_by)
        most = 4 * (os.cpu_count() or 1)  # more processes than that only slow the decoding down
        check_between("workers", self.workers, 0, most)

    def cache_settings(self) -> dict:
        """The settings that change the cache's content (not where it goes or how fast it is built)."""
        return {
            "size": self.size,
            "layout": self.layout,
            "mask_suffix": self.mask_suffix,
            "split": list(self.split),
            "seed": self.seed,
            "strict": self.strict,
            "split_file": str(self.split_file) if self.split_file else None,
            "group_by": self.group_by,
        }
