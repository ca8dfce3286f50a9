"""The per-image summary of `skinseg segment` (`summary`): lesion area, bounding box, mean probability, time."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import BinaryIO

import numpy as np

from skinseg.errors import SkinsegError
from skinseg.fileio import NAMES_AS_THEY_ARE

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
    if not measure:
        return SUMMARY_COLUMNS
    from skinseg.measurement import MEASURE_COLUMNS  # its package brings scipy and scikit-image: only when asked for

    return (*SUMMARY_COLUMNS, *MEASURE_COLUMNS[1:])


def summary_row(source: Path, target: Path, mask: np.ndarray, prob: np.ndarray, seconds: float) -> dict:
    area = int(mask.sum())
    rows, columns = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))  # not every pixel's place: faster
    box = [int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1] if area else [0, 0, 0, 0]
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
    interrupted batch keeps the rows of the images it finished. The file is whole at every moment, even after a
    kill -9: a CSV ends with its last whole row, and a JSON list is closed after each row (the next row is written
    over the closing bracket, together with a new one, in one write). `continued`: a file that exists is continued
    (`skip_existing`): its rows are kept and the new ones appended, provided it has the same columns. `columns`:
    segment's summary, or `measure`'s; `what` names the file in errors."""

    def __init__(
        self,
        path: Path | None,
        continued: bool = False,
        columns: tuple[str, ...] = SUMMARY_COLUMNS,
        what: str = "`summary`",
    ):
        self.path = path
        self.columns = columns
        self.what = what
        self.file: BinaryIO | None = None
        self.json = path is not None and _is_json(path)
        self.continuing = continued  # `skip_existing`: a rerun continues this file (so one of a header is kept)
        self.continued = continued and path is not None and path.exists()
        self.count = 0
        self.end = 0  # JSON: where the closing bracket starts

    def __enter__(self) -> SummaryWriter:
        if self.path is None:
            return self
        continued = continued_rows(self.path, self.columns, self.what) if self.continued else None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "r+b" if continued else "wb")  # closed in __exit__
            if continued:  # cut a row that a kill -9 cut short (and a JSON list's closing bracket)
                self.file.truncate(continued[0])
                self.file.seek(continued[0])
        except OSError as exc:
            raise SkinsegError(f"cannot write {self.what}: {exc.strerror or exc}", self.path) from None
        self.count, self.end = continued[1] if continued else 0, continued[0] if continued else 1
        if not continued:
            self._write("[" if self.json else ",".join(self.columns) + "\r\n")
        if self.json:
            self._write(_CLOSING)
        return self

    def _write(self, text: str) -> None:
        assert self.file is not None
        try:
            self.file.write(text.encode("utf-8", NAMES_AS_THEY_ARE))
            self.file.flush()
        except OSError as exc:
            raise SkinsegError(f"could not write file: {exc.strerror or exc}", self.path) from None

    def add(self, row: dict) -> None:
        if self.file is None:
            return
        if self.json:
            text = ("," if self.count else "") + "\n " + json.dumps(row)
            self.file.seek(self.end)
            self._write(text + _CLOSING)
            self.end += len(text.encode("utf-8", NAMES_AS_THEY_ARE))
        else:
            buffer = io.StringIO()
            csv.DictWriter(buffer, fieldnames=self.columns).writerow(row)
            self._write(buffer.getvalue())
        self.count += 1

    def __exit__(self, *exc_info) -> None:
        if self.file is None:
            return
        self.file.close()
        if not self.continuing and self.count == 0 and self.path is not None:
            self.path.unlink(missing_ok=True)  # no file of a header alone: a rerun would be refused ("exists")


_CLOSING = "\n]\n"  # what ends a JSON summary, after every row


def _is_json(path: Path) -> bool:
    """A summary is a JSON list or CSV, by its suffix."""
    return path.suffix.lower() == ".json"


def continued_rows(
    path: Path, columns: tuple[str, ...] = SUMMARY_COLUMNS, what: str = "`summary`"
) -> tuple[int, int] | None:
    """Where a summary being continued ends (in bytes) and how many rows it holds (None: it is empty, and is
    written anew); a row that a kill -9 cut short is dropped. One without these `columns` is refused, so that
    rows of two kinds never mix."""
    whole = _whole_rows(path, columns, what)
    return None if whole is None else (len(whole[0].encode("utf-8", NAMES_AS_THEY_ARE)), whole[1])


def _whole_rows(path: Path, columns: tuple[str, ...], what: str) -> tuple[str, int, list | None] | None:
    """A summary's text up to the end of its last whole row, its count of rows, and (JSON) the rows; None where
    it is empty. Read once, for continued_rows and rows_of alike."""
    try:
        with open(path, encoding="utf-8", errors=NAMES_AS_THEY_ARE, newline="") as handle:  # \r\n kept: counted
            text = handle.read()
    except OSError as exc:
        raise SkinsegError(f"cannot read the summary to continue it: {exc.strerror or exc}", path) from None
    if not text.strip():
        return None
    refuse = SkinsegError(
        f"has other columns than this command writes, so it cannot be continued: give another {what}", path
    )
    if _is_json(path):
        rows, body = _json_rows(text)
        if rows is None or any(not isinstance(r, dict) or tuple(r) != columns for r in rows):
            raise refuse
        return body, len(rows), rows
    whole = text[: text.rfind("\n") + 1]  # a last row without its line end was cut short: dropped
    lines = whole.splitlines()
    if not lines or lines[0] != ",".join(columns):
        raise refuse
    return whole, len(lines) - 1, None


def _json_rows(text: str) -> tuple[list | None, str]:
    """The rows of a JSON summary (closed, or left open by a kill -9, perhaps inside its last row: one row a
    line) and the text up to the end of its last whole row."""
    body = text.rstrip().removesuffix("]").rstrip()
    # closed; cut after a row's comma (a short write of the next row's start); cut inside the last row
    for candidate in (body, body.removesuffix(","), body[: body.rfind("\n")].rstrip().removesuffix(",")):
        try:
            rows = json.loads(candidate + "]")
        except ValueError:
            continue
        return (rows, candidate) if isinstance(rows, list) else (None, candidate)
    return None, body


def rows_of(path: Path, columns: tuple[str, ...], what: str) -> list[dict]:
    """The whole rows of a file that `skip_existing` continues (checked as continued_rows checks it), as dicts of
    strings (CSV) or of JSON values; none where it is missing or empty."""
    whole = _whole_rows(path, columns, what) if path.exists() else None
    if whole is None:
        return []
    text, _, json_rows = whole
    return json_rows if json_rows is not None else list(csv.DictReader(io.StringIO(text, newline="")))
