import io
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skinseg.errors import SkinsegError
from skinseg.evaluation.metrics import bootstrap_interval
from skinseg.evaluation.reports import write_reports
from skinseg.evaluation.scoring import evaluate_folders
from skinseg.inference.config import SegmentConfig
from skinseg.inference.model_run import ModelRun
from skinseg.inference.segment import segment_paths
from skinseg.reporting.html import ReportCases, probability_margin, write_page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Page(HTMLParser):
    """The cases table's rows (cell texts, data-v values, image sources), every src/href, the page's text."""

    def __init__(self, text: str):
        super().__init__()
        self.rows: list[dict] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.in_cases = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [attrs[key] for key in ("src", "href") if attrs.get(key)]
        if tag == "table" and attrs.get("id") == "cases":
            self.in_cases = True
        elif self.in_cases and tag == "tr" and "data-rank" in attrs:
            self.rows.append({"rank": int(attrs["data-rank"]), "cells": [], "values": [], "image": None})
        elif self.in_cases and self.rows and tag == "td":
            self.rows[-1]["cells"].append("")
            self.rows[-1]["values"].append(attrs.get("data-v"))
        elif self.in_cases and self.rows and tag == "img":
            self.rows[-1]["image"] = attrs["src"]

    def handle_endtag(self, tag):
        if tag == "table":
            self.in_cases = False

    def handle_data(self, data):
        self.text.append(data)
        if self.in_cases and self.rows and self.rows[-1]["cells"]:
            self.rows[-1]["cells"][-1] += data


def decode_image(src: str) -> Image.Image:
    import base64

    assert src.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))


@pytest.fixture
def scored(raw_dir, tmp_path):
    """Predictions for the 30 synthetic truths: shifted by 0-5 pixels, and one empty."""
    pred = tmp_path / "pred"
    pred.mkdir()
    for i, path in enumerate(sorted((raw_dir / "masks").iterdir())):
        mask = np.asarray(Image.open(path)) > 127
        mask = np.zeros_like(mask) if i == 7 else np.roll(mask, i % 6, axis=1)
        Image.fromarray(mask.astype(np.uint8) * 255).save(pred / path.name)
    return pred, raw_dir / "masks"


def test_the_evaluation_page_has_every_case_with_its_numbers(scored, tmp_path):
    cases = ReportCases()
    report = evaluate_folders(*scored, cases)
    write_reports(report, html_file=tmp_path / "report.html")
    page = Page((tmp_path / "report.html").read_text(encoding="utf-8"))
    by_id = {row["id"]: row for row in report.per_image}
    areas = {row["id"]: row for row in cases.rows}
    assert len(page.rows) == 30 and {row["cells"][1] for row in page.rows} == set(by_id)
    for row in page.rows:
        _, image_id, dice, jaccard, truth_area, pred_area = row["cells"]
        expected = by_id[image_id]
        assert (dice, jaccard) == (f"{expected['dice']:.4f}", f"{expected['jaccard']:.4f}")
        assert float(row["values"][2]) == pytest.approx(expected["dice"], rel=1e-5)
        assert truth_area == f"{areas[image_id]['truth_area']:.1%}"
        assert pred_area == f"{areas[image_id]['prediction_area']:.1%}"
        assert decode_image(row["image"]).size == (48, 48)  # smaller than SIDE: kept at its size
    assert [row["rank"] for row in page.rows] == list(range(1, 31))
    dice_in_order = [by_id[row["cells"][1]]["dice"] for row in page.rows]
    assert dice_in_order == sorted(dice_in_order) and dice_in_order[0] == 0  # worst first: the empty prediction
    text = " ".join(page.text)
    assert f"{report.summary['dice']['mean']:.4f}" in text and "empty predictions: 1" in text
    assert "all 30 images" in text
    assert all(link.startswith("data:") for link in page.links)  # nothing from the network


def test_the_cap_keeps_the_worst_cases_and_the_summary_counts_all(scored, tmp_path):
    report = evaluate_folders(*scored, ReportCases(limit=5))
    write_reports(report, html_file=tmp_path / "report.html")
    page = Page((tmp_path / "report.html").read_text(encoding="utf-8"))
    worst = sorted(report.per_image, key=lambda row: row["dice"])[:5]
    assert [row["cells"][1] for row in page.rows] == [row["id"] for row in worst]
    assert "the 5 worst of 30 images" in " ".join(page.text)


def test_an_existing_report_is_replaced_only_with_overwrite(scored, tmp_path):
    from typer.testing import CliRunner

    from skinseg import cli

    target = tmp_path / "report.html"
    target.write_text("mine")
    with pytest.raises(SkinsegError, match="exists"):
        write_page(target, "<html></html>")
    assert target.read_text() == "mine"
    pred, truth = scored
    command = ["evaluate", "--pred", str(pred), "--truth", str(truth), "--report", str(target)]
    refused = CliRunner().invoke(cli.app, command)
    assert refused.exit_code == 1 and "--overwrite" in refused.output and target.read_text() == "mine"
    written = CliRunner().invoke(cli.app, [*command, "--overwrite"])
    assert written.exit_code == 0 and len(Page(target.read_text()).rows) == 30
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_the_segment_page_lists_areas_margins_and_failures(raw_dir, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in sorted((raw_dir / "images").iterdir())[:4]:
        shutil.copy(path, inputs)
    (inputs / "broken.png").write_bytes(b"not a png")
    result = segment_paths(
        SegmentConfig(
            inputs=(inputs,), output=tmp_path / "out", report=tmp_path / "seg.html", run=ModelRun(device="cpu")
        )
    )
    page = Page((tmp_path / "seg.html").read_text(encoding="utf-8"))
    by_name = {Path(row["image"]).name: row for row in result.rows}
    assert len(by_name) == 4 and {row["cells"][1] for row in page.rows} == set(by_name)
    for row in page.rows:
        _, name, area, margin = row["cells"]
        assert area == f"{by_name[name]['lesion_fraction']:.1%}" and margin.endswith("%")
    badness = [2.0 if float(row["values"][2]) == 0 else float(row["values"][3]) for row in page.rows]
    assert badness == sorted(badness, reverse=True)  # empty masks, then the most uncertain, first
    text = " ".join(page.text)
    assert "broken.png" in text and "Failures" in text and "Dice" not in text


def test_probability_margin_and_bootstrap_interval():
    probability = np.array([[0.95, 0.55], [0.45, 0.1]])
    mask = probability > 0.5
    assert probability_margin(probability, mask, 0.5) == 0.5  # 0.55 is near, 0.95 is not
    assert probability_margin(probability, np.zeros_like(mask), 0.5) == 0.0
    low, high = bootstrap_interval([0.5] * 10)
    assert low == high == 0.5
    low, high = bootstrap_interval(np.linspace(0, 1, 200))
    assert low < 0.5 < high and high - low < 0.15


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium or chromium-browser binary")
def test_the_page_runs_in_headless_chromium_without_console_messages(scored, tmp_path):
    write_reports(evaluate_folders(*scored, ReportCases()), html_file=tmp_path / "report.html")
    # After loading, sort by Dice twice (descending) and filter to the worst 3, as a user would.
    check = """<script>addEventListener("load", () => {
      const dice = document.querySelectorAll("#cases th")[2];
      dice.click(); dice.click();
      document.getElementById("worst").value = "3";
      document.getElementById("worst").dispatchEvent(new Event("input"));
      const rows = [...document.querySelectorAll("#cases tbody tr")];
      document.body.dataset.order = rows.map(r => r.cells[2].dataset.v).join(",");
      document.body.dataset.shown = rows.filter(r => !r.hidden).length;
    });</script>"""
    page = tmp_path / "report.html"
    (tmp_path / "checked.html").write_text(page.read_text(encoding="utf-8").replace("</body>", check + "</body>"))
    run = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0", "--dump-dom",
         (tmp_path / "checked.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert [line for line in run.stderr.splitlines() if ":CONSOLE" in line] == []
    assert 'data-ready="yes"' in run.stdout  # the page's script ran to its end
    assert 'data-shown="3"' in run.stdout
    dice = [float(value) for value in run.stdout.split('data-order="')[1].split('"')[0].split(",")]
    assert len(dice) == 30 and dice == sorted(dice, reverse=True)
