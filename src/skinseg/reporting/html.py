"""The `report` of segment, measure and evaluate: one self-contained HTML page to look through results, worst
cases first.

Everything is inline (style, a few lines of script, the overlays as base64 JPEGs), so the page opens offline in
any current browser and can be mailed or archived. The top says what was scored and summarises every image;
below is one row per image for the `limit` worst (lowest Dice; for `segment`, empty masks and then the largest
probability margin), each with its overlay: truth outline cyan, prediction yellow.
"""

from __future__ import annotations

import base64
import datetime
import heapq
import io
from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from skinseg import __version__
from skinseg.fileio import refuse_existing, write_text

NEAR = 0.1  # probability margin: a mask pixel within this of the threshold counts as uncertain
SIDE = 320  # longest side of the embedded overlays, in pixels: 500 ISIC cases weigh about 8 MB
QUALITY = 70  # of their JPEG encoding


def probability_margin(probability: np.ndarray, mask: np.ndarray, threshold: float) -> float:
    """The fraction of the mask's pixels whose probability lies within NEAR of the threshold."""
    if not mask.any():
        return 0.0
    return float(np.mean(np.abs(probability[mask] - threshold) < NEAR))


def overlay_jpeg(prediction: np.ndarray, truth: np.ndarray | None, image: np.ndarray | None, side: int = SIDE) -> bytes:
    """The image (dark grey without one) at most `side` pixels, truth outline cyan, prediction yellow, as JPEG."""
    from skinseg.reporting.figures import overlay_image, shrink

    background = image if image is not None else np.full((*prediction.shape, 3), 48, np.uint8)
    small = overlay_image(
        shrink(background, side), shrink(prediction, side), None if truth is None else shrink(truth, side), width=1
    )
    buffer = io.BytesIO()
    Image.fromarray(small).save(buffer, format="JPEG", quality=QUALITY, optimize=True)
    return buffer.getvalue()


class ReportCases:
    """Numbers for every image and overlays for the `limit` worst, gathered while images are scored: memory
    stays bounded however many there are."""

    def __init__(self, limit: int = 500):
        self.limit = limit
        self.rows: list[dict[str, Any]] = []
        self._worst: list[tuple[float, int, bytes]] = []  # heap of (badness, row index, JPEG): least bad on top

    def add(
        self,
        image_id: str,
        prediction: np.ndarray,
        truth: np.ndarray | None = None,
        image: np.ndarray | None = None,
        probability: np.ndarray | None = None,
        threshold: float = 0.5,
        metrics: dict[str, Any] | None = None,
        measures: dict[str, Any] | None = None,
        badness: float | None = None,
    ) -> None:
        """One image's row and, if among the `limit` worst so far, its overlay. With a `truth`, `metrics` are the
        image's ISIC metrics as the scorer computed them (Dice and Jaccard are shown). `measures`: the lesion's
        measurements, added to the row. `badness`: what ranks the cases, worst first, in place of 1 - Dice (or
        the probability margin)."""
        row: dict[str, Any] = {"id": image_id, "prediction_area": float(prediction.mean())}
        if truth is not None:
            if metrics is None:
                raise ValueError("a case with a truth needs its metrics")
            row.update(dice=metrics["dice"], jaccard=metrics["jaccard"], truth_area=float(truth.mean()))
            rank = 1.0 - metrics["dice"]
        else:
            row["margin"] = probability_margin(probability, prediction, threshold) if probability is not None else 0.0
            rank = 2.0 if not prediction.any() else row["margin"]  # an empty mask first: likely a failure
        row.update(measures or {})
        badness = rank if badness is None else badness
        self.rows.append(row)
        entry = (badness, -len(self.rows), b"")  # ties: the earlier image counts as worse
        if self.limit > 0 and (len(self._worst) < self.limit or entry > self._worst[0]):
            entry = (badness, -len(self.rows), overlay_jpeg(prediction, truth, image))
            (heapq.heappush if len(self._worst) < self.limit else heapq.heappushpop)(self._worst, entry)

    def worst(self) -> list[tuple[dict[str, Any], bytes]]:
        """(row, JPEG) of the kept cases, worst first."""
        return [(self.rows[-index - 1], jpeg) for _, index, jpeg in sorted(self._worst, reverse=True)]


# Columns: key in a row, heading, number format ("%" shows a fraction as a percentage).
EVALUATE_COLUMNS = (
    ("dice", "Dice", ".4f"),
    ("jaccard", "Jaccard", ".4f"),
    ("truth_area", "truth area", "%"),
    ("prediction_area", "predicted area", "%"),
)
SEGMENT_COLUMNS = (("prediction_area", "lesion area", "%"), ("margin", "probability margin", "%"))
# The measurements of `skinseg measure` that a page shows (docs/measure.md defines them).
MEASURE_SHOWN = (
    ("diameter_px", "diameter (px)", ".0f"),
    ("asymmetry", "asymmetry", ".3f"),
    ("asymmetry_axes", "asymmetric axes", "d"),
    ("border_irregularity", "border irregularity", ".2f"),
    ("border_abruptness", "border abruptness", ".1f"),
    ("colour_count", "colours", "d"),
    ("confidence", "confidence", ".3f"),
)


def _number(value: float | None, fmt: str) -> str:
    if value is None:  # not measured: an empty mask, or no model
        return "-"
    return f"{value:.1%}" if fmt == "%" else f"{value:{fmt}}"


def _cell(value: float | None, fmt: str) -> str:
    return f'<td data-v="{-1 if value is None else format(value, ".6g")}">{_number(value, fmt)}</td>'


def _facts_table(facts: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in facts if v is not None)
    return f'<table class="facts">{rows}</table>'


def _histogram_svg(values: list[float], bins: int = 20) -> str:
    counts, _ = np.histogram(values, bins=bins, range=(0, 1))
    top, width, height = max(1, int(counts.max())), 16, 100
    bars = "".join(
        f'<rect x="{i * width}" y="{height - c / top * height:.1f}" width="{width - 1}" '
        f'height="{c / top * height:.1f}"><title>Dice {i / bins:.2f}-{(i + 1) / bins:.2f}: {c} images</title></rect>'
        for i, c in enumerate(counts)
    )
    labels = "".join(
        f'<text x="{x * bins * width}" y="{height + 14}" text-anchor="middle">{x:g}</text>' for x in (0, 0.5, 1)
    )
    return (
        f'<svg class="hist" viewBox="-10 -4 {bins * width + 20} {height + 20}" role="img" '
        f'aria-label="Dice histogram">{bars}{labels}</svg>'
    )


def _metrics_table(summary: dict[str, dict[str, float]]) -> str:
    """Mean, median and 95% bootstrap interval of each metric, as `metrics.summarise` gave them."""
    rows = ""
    for name, stats in summary.items():
        rows += (
            f"<tr><th>{name}</th><td>{stats['mean']:.4f}</td><td>{stats['median']:.4f}</td>"
            f"<td>{stats['ci95_low']:.4f} - {stats['ci95_high']:.4f}</td></tr>"
        )
    heads = "".join(f"<th>{head}</th>" for head in ("metric", "mean", "median", "95% CI of the mean"))
    return f'<table class="metrics"><tr>{heads}</tr>{rows}</table>'


def _cases_table(cases: ReportCases, columns: tuple[tuple[str, str, str], ...], order: str, truth: bool) -> str:
    heads = "".join(f"<th>{escape(label)}</th>" for _, label, _ in columns)
    body = []
    for rank, (row, jpeg) in enumerate(cases.worst(), 1):
        image = base64.b64encode(jpeg).decode("ascii")
        cells = "".join(_cell(row.get(key), fmt) for key, _, fmt in columns)
        body.append(
            f'<tr data-rank="{rank}"><td data-v="{rank}">{rank}</td><td data-v="{escape(row["id"])}">'
            f'<img src="data:image/jpeg;base64,{image}" alt="{escape(row["id"])}" loading="lazy" decoding="async">'
            f"{escape(row['id'])}</td>{cells}</tr>"
        )
    legend = '<span class="key truth"></span> truth ' if truth else ""
    shown, total = len(body), len(cases.rows)
    note = f"the {shown} worst of {total} images (--report-max-cases)" if shown < total else f"all {total} images"
    return (
        f'<h2>Cases</h2><p>{note}, {order}. {legend}<span class="key prediction"></span> prediction. '
        f'Click a heading to sort, an image to enlarge. Show the worst <input id="worst" type="number" min="1" '
        f'value="{shown}"> rows.</p><table id="cases"><thead><tr><th>rank</th><th>image</th>'
        f"{heads}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}h2{font-size:1.15em}
table{border-collapse:collapse}td,th{padding:.2em .6em;text-align:left;vertical-align:top}
.facts th{font-weight:600;padding-left:0}.metrics td,#cases td{text-align:right;font-variant-numeric:tabular-nums}
.metrics tr:first-child th,#cases th{border-bottom:1px solid #999}#cases th{cursor:pointer;user-select:none}
#cases tr:nth-child(even){background:#f4f4f4}#cases td:nth-child(2){text-align:left}
#cases img{width:160px;cursor:zoom-in;display:block}.facts th{white-space:nowrap}#worst{width:5em}
.top{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}.hist{width:340px}.hist rect{fill:#4477aa}
.hist text{font-size:9px}.key{display:inline-block;width:1.6em;height:.5em;vertical-align:middle}
.truth{background:#00dcff}.prediction{background:#ffe600}.bad{color:#b00}
dialog{padding:.5em;border:0}dialog figure{margin:0}dialog img{width:min(640px,92vw);display:block}
"""

SCRIPT = """
const table = document.getElementById("cases"), body = table.tBodies[0];
const key = (row, i) => { const v = row.cells[i].dataset.v; return isNaN(v) ? v : Number(v); };
for (const th of table.tHead.rows[0].cells) th.onclick = () => {
  const i = th.cellIndex, dir = th.dataset.dir = th.dataset.dir === "1" ? "-1" : "1";
  const rows = [...body.rows].sort((a, b) => (key(a, i) > key(b, i) ? 1 : key(a, i) < key(b, i) ? -1 : 0) * dir);
  body.append(...rows);
};
const worst = document.getElementById("worst");
worst.oninput = () => {
  for (const row of body.rows) row.hidden = Number(row.dataset.rank) > (Number(worst.value) || Infinity);
};
const box = document.getElementById("box");
body.onclick = event => {
  if (event.target.tagName !== "IMG") return;
  box.querySelector("img").src = event.target.src;
  box.querySelector("figcaption").textContent = event.target.alt;
  box.showModal();
};
box.onclick = () => box.close();
document.body.dataset.ready = "yes";
"""


def page(title: str, top: str, cases: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width"><style>{STYLE}</style></head><body>'
        f"<h1>{escape(title)}</h1>{top}{cases}"
        '<dialog id="box"><figure><img alt=""><figcaption></figcaption></figure></dialog>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def _made() -> tuple[str, str]:
    return "written", f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} by skinseg {__version__}"


def evaluation_page(report, cases: ReportCases) -> str:
    """The page for `skinseg evaluate`: the summary over `report.per_image`, the cases' rows from `cases`, the
    model's facts from `report.model_facts`."""
    dice = [row["dice"] for row in report.per_image]
    failures = {
        "Dice < 0.5": sum(d < 0.5 for d in dice),
        "empty predictions": sum(row["prediction_area"] == 0 for row in cases.rows),
        "empty truths": sum(row.get("truth_area") == 0 for row in cases.rows),
    }
    failed = "".join(f'<li class="{"bad" if n else ""}">{name}: {n}</li>' for name, n in failures.items())
    facts = [("scored", report.title), ("images", len(report.per_image))]
    facts += [*report.model_facts, _made()]
    top = (
        f'{_facts_table(facts)}<div class="top"><div><h2>ISIC metrics</h2>{_metrics_table(report.summary)}</div>'
        f"<div><h2>Dice per image</h2>{_histogram_svg(dice)}<ul>{failed}</ul></div></div>"
    )
    table = _cases_table(cases, _with_measures(EVALUATE_COLUMNS, cases), "the lowest Dice first", truth=True)
    return page("skinseg evaluation", top, table)


def segment_page(cases: ReportCases, failed: list[tuple[Path, str]], facts: list[tuple[str, Any]]) -> str:
    """The page for `skinseg segment`: no truth, so lesion area and probability margin, and the failures.
    `facts`: what was segmented and with which model (Segmenter.facts)."""
    areas = [row["prediction_area"] for row in cases.rows]
    margins = [row["margin"] for row in cases.rows]
    summary = [
        ("segmented", len(cases.rows)),
        ("empty masks", sum(a == 0 for a in areas)),
        ("median lesion area", f"{np.median(areas):.1%}" if areas else None),
        ("median probability margin", f"{np.median(margins):.1%}" if margins else None),
        ("failed", len(failed)),
    ]
    problems = "".join(f"<li>{escape(str(path))}: {escape(reason)}</li>" for path, reason in failed)
    top = _facts_table([*facts, _made(), *summary])
    top += f"<p>Probability margin: the fraction of a mask's pixels with |probability - threshold| &lt; {NEAR}.</p>"
    top += f'<h2>Failures</h2><ul class="bad">{problems}</ul>' if failed else ""
    order = "empty masks first, then the largest probability margin"
    return page("skinseg segmentation", top, _cases_table(cases, _with_measures(SEGMENT_COLUMNS, cases), order, False))


def _with_measures(columns: tuple, cases: ReportCases) -> tuple:
    """The page's own columns, and the measurements' where the cases have them (segment's `measure`, evaluate)."""
    return (*columns, *MEASURE_SHOWN) if any("asymmetry" in row for row in cases.rows) else columns


def measure_page(cases: ReportCases, failed: list[tuple[Path, str]], facts: list[tuple[str, Any]]) -> str:
    """The page for `skinseg measure`: each lesion's outline and measurements, the most asymmetric first.
    `facts`: what was measured, on which masks."""
    measured = [row for row in cases.rows if row.get("asymmetry") is not None]
    summary = [
        ("measured", len(measured)),
        ("no lesion", len(cases.rows) - len(measured)),
        ("median diameter", f"{np.median([r['diameter_px'] for r in measured]):.0f} px" if measured else None),
        ("median asymmetry", f"{np.median([r['asymmetry'] for r in measured]):.3f}" if measured else None),
        ("failed", len(failed)),
    ]
    problems = "".join(f"<li>{escape(str(path))}: {escape(reason)}</li>" for path, reason in failed)
    top = _facts_table([*facts, _made(), *summary])
    top += "<p>Measurements for research, not a diagnosis: docs/measure.md defines each.</p>"
    top += f'<h2>Failures</h2><ul class="bad">{problems}</ul>' if failed else ""
    columns = (("prediction_area", "lesion area", "%"), *MEASURE_SHOWN)
    return page("skinseg measurements", top, _cases_table(cases, columns, "the most asymmetric first", truth=False))


HTML_SUFFIXES = (".html", ".htm")  # what a `report` file is named: the page is HTML, whatever the name says


def write_page(path: str | Path, page: str, overwrite: bool = False) -> None:
    """Written atomically; an existing file is replaced only with `overwrite`."""
    refuse_existing(path, overwrite)
    write_text(path, page)
