"""The per-image summary of `skinseg segment --summary`: lesion area, bounding box, mean probability, time."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TextIO

import numpy as np

from skinseg.errors import SkinsegError
from skinseg.fileio import NAMES_AS_THEY_ARE, interrupts_held

SUMMARY_COLUMNS = (
    "image",
    "mask",
    "width",
    "height",
    "lesion_pixels",
    "lesion_fraction",
    "bbox_x0",
    "bbox_y0",
    "bbox_x1",
    "bbox_y1",
    "mean_probability",
    "seconds",
)


def summary_row(source: Path, target: Path, mask: np.ndarray, prob: np.ndarray, seconds: float) -> dict:
    area = int(mask.sum())
    ys, xs = np.nonzero(mask)
    box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if area else [0, 0, 0, 0]
    values = [
        str(source),
        str(target),
        mask.shape[1],
        mask.shape[0],
        area,
        round(area / mask.size, 6),
        *box,
        round(float(prob[mask].mean()) if area else 0.0, 6),
        round(seconds, 4),
    ]
    return dict(zip(SUMMARY_COLUMNS, values, strict=True))


class SummaryWriter:
    """Per-image rows written to CSV (or a JSON list, by suffix) as they come and flushed each time, so that an
    interrupted batch keeps the rows of the images it finished (the JSON list is closed on the way out)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.file: TextIO | None = None
        self.json = path is not None and path.suffix.lower() == ".json"
        self.count = 0

    def __enter__(self) -> SummaryWriter:
        if self.path is None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(  # closed in __exit__
                self.path, "w", encoding="utf-8", errors=NAMES_AS_THEY_ARE, newline=""
            )
        except OSError as exc:
            raise SkinsegError(f"cannot write the summary: {exc.strerror or exc}", self.path) from None
        self._write("[" if self.json else ",".join(SUMMARY_COLUMNS) + "\r\n")
        return self

    def _write(self, text: str) -> None:
        assert self.file is not None
        try:
            self.file.write(text)
            self.file.flush()
        except OSError as exc:
            raise SkinsegError(f"could not write file: {exc.strerror or exc}", self.path) from None

    def add(self, row: dict) -> None:
        if self.file is None:
            return
        if self.json:
            self._write(("," if self.count else "") + "\n " + json.dumps(row))
        else:
            buffer = io.StringIO()
            csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS).writerow(row)
            self._write(buffer.getvalue())
        self.count += 1

    def __exit__(self, *exc_info) -> None:
        if self.file is None:
            return
        with interrupts_held():
            try:
                if self.json:
                    self._write("\n]\n")
            finally:
                self.file.close()
