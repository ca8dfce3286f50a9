"""The per-image summary of `skinseg segment` (`summary`): lesion area, bounding box, mean probability, time."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TextIO

import numpy as np

from skinseg.errors import SkinsegError
from skinseg.fileio import NAMES_AS_THEY_ARE, interrupts_held
from skinseg.measurement import MEASURE_COLUMNS

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


def summary_columns(measure: bool) -> tuple[str, ...]:
    """A summary's columns: segment's, and with `measure` those of `skinseg measure` after them."""
    return (*SUMMARY_COLUMNS, *MEASURE_COLUMNS[1:]) if measure else SUMMARY_COLUMNS


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
    interrupted batch keeps the rows of the images it finished (the JSON list is closed on the way out).
    `continued`: a summary that exists is continued (segment's `skip_existing`): its rows are kept and the new
    ones appended, provided it has the same columns. `columns`: segment's summary, or `measure`'s."""

    def __init__(self, path: Path | None, continued: bool = False, columns: tuple[str, ...] = SUMMARY_COLUMNS):
        self.path = path
        self.columns = columns
        self.file: TextIO | None = None
        self.json = path is not None and _is_json(path)
        self.continued = continued and path is not None and path.exists()
        self.count = 0

    def __enter__(self) -> SummaryWriter:
        if self.path is None:
            return self
        continued = continued_rows(self.path, self.columns) if self.continued else None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if continued:  # cut a JSON list's closing bracket, or a row that a kill -9 cut short, then append
                with open(self.path, "r+b") as whole:
                    whole.truncate(continued[0])
            self.file = open(  # closed in __exit__
                self.path, "a" if continued else "w", encoding="utf-8", errors=NAMES_AS_THEY_ARE, newline=""
            )
        except OSError as exc:
            raise SkinsegError(f"cannot write the summary: {exc.strerror or exc}", self.path) from None
        if continued:
            self.count = continued[1]
        else:
            self._write("[" if self.json else ",".join(self.columns) + "\r\n")
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
            csv.DictWriter(buffer, fieldnames=self.columns).writerow(row)
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


def _is_json(path: Path) -> bool:
    """A summary is a JSON list or CSV, by its suffix."""
    return path.suffix.lower() == ".json"


def continued_rows(path: Path, columns: tuple[str, ...] = SUMMARY_COLUMNS) -> tuple[int, int] | None:
    """Where a summary being continued ends (in bytes) and how many rows it holds (None: it is empty, and is
    written anew); a row that a kill -9 cut short is dropped. One without these `columns` is refused, so that
    rows of two kinds never mix."""
    try:
        with open(path, encoding="utf-8", errors=NAMES_AS_THEY_ARE, newline="") as handle:  # \r\n kept: counted
            text = handle.read()
    except OSError as exc:
        raise SkinsegError(f"cannot read the summary to continue it: {exc.strerror or exc}", path) from None
    if not text.strip():
        return None
    refuse = SkinsegError("is not a summary of segment's (its columns differ): give another `summary`", path)
    if _is_json(path):
        rows, body = _json_rows(text)
        if rows is None or any(not isinstance(r, dict) or tuple(r) != columns for r in rows):
            raise refuse
        return len(body.encode("utf-8", NAMES_AS_THEY_ARE)), len(rows)
    whole = text[: text.rfind("\n") + 1]  # a last row without its line end was cut short: dropped
    lines = whole.splitlines()
    if not lines or lines[0] != ",".join(columns):
        raise refuse
    return len(whole.encode("utf-8", NAMES_AS_THEY_ARE)), len(lines) - 1


def _json_rows(text: str) -> tuple[list | None, str]:
    """The rows of a JSON summary (closed, or left open by a kill -9, perhaps inside its last row: one row a
    line) and the text up to the end of its last whole row."""
    body = text.rstrip().removesuffix("]").rstrip()
    for candidate in (body, body[: body.rfind("\n")].rstrip().removesuffix(",")):
        try:
            rows = json.loads(candidate + "]")
        except ValueError:
            continue
        return (rows, candidate) if isinstance(rows, list) else (None, candidate)
    return None, body
