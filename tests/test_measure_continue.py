"""Issue #33, case 14: `measure`'s row files are whole at every moment (a kill -9 left an unclosed JSON list under
its real name), and `measure --skip-existing` continues a batch as `segment --skip-existing` does."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skinseg.errors import ConfigError, SkinsegError
from skinseg.inference.config import MeasureConfig
from skinseg.inference.measure import measure_paths
from skinseg.inference.summary import SummaryWriter
from test_cli import invoke


def lesions(folder: Path, *names: str) -> Path:
    """Images with a dark disc on skin, and its mask beside each (`<id>_segmentation.png`)."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:48, :48]
    for index, name in enumerate(names):
        disc = (yy - 24) ** 2 + (xx - 22 - index) ** 2 < 150
        image = np.where(disc[..., None], [90, 60, 40], [220, 180, 160]).astype(np.uint8)
        Image.fromarray(image).save(folder / f"{name}.png")
        Image.fromarray(disc.astype(np.uint8) * 255).save(folder / f"{name}_segmentation.png")
    return folder


def test_a_json_list_is_closed_after_every_row_not_only_at_the_end(tmp_path):
    """A kill -9 never reaches __exit__: the file must be a whole list after each row, as it is then."""
    path = tmp_path / "rows.json"
    writer = SummaryWriter(path, columns=("id", "value")).__enter__()
    assert json.loads(path.read_text()) == []
    for index in range(3):
        writer.add({"id": f"a{index}", "value": index})
        assert [row["id"] for row in json.loads(path.read_text())] == [f"a{i}" for i in range(index + 1)]
    writer.file.close()  # as a kill -9 leaves it: no __exit__
    with SummaryWriter(path, continued=True, columns=("id", "value")) as again:
        again.add({"id": "b", "value": 9})
    assert [row["id"] for row in json.loads(path.read_text())] == ["a0", "a1", "a2", "b"]


def test_measure_skip_existing_measures_only_the_images_without_a_row(tmp_path):
    folder = lesions(tmp_path / "in", "a", "b")
    csv_file, json_file = tmp_path / "m.csv", tmp_path / "m.json"
    first = invoke("measure", folder, "--masks", folder, "--csv", csv_file, "--json", json_file)
    assert first.exit_code == 0, first.output
    lesions(folder, "a", "b", "c")
    refused = invoke("measure", folder, "--masks", folder, "--csv", csv_file, "--json", json_file)
    assert refused.exit_code == 1 and "exists" in refused.output
    again = invoke("measure", folder, "--masks", folder, "--csv", csv_file, "--json", json_file, "--skip-existing")
    assert again.exit_code == 0 and "measured 1 image(s)" in again.output and "2 measured before" in again.output
    with open(csv_file, newline="") as handle:
        assert [row["id"] for row in csv.DictReader(handle)] == ["a", "b", "c"]
    assert [row["id"] for row in json.loads(json_file.read_text())] == ["a", "b", "c"]


def test_measure_skip_existing_cuts_a_row_that_a_kill_left_half_written(tmp_path):
    folder = lesions(tmp_path / "in", "a", "b")
    json_file = tmp_path / "m.json"
    measure_paths(MeasureConfig(inputs=(folder,), masks=folder, json_file=json_file))
    rows = json.loads(json_file.read_text())
    json_file.write_text("[\n " + json.dumps(rows[0]) + ",\n " + json.dumps(rows[1])[:40])  # cut inside row b
    result = measure_paths(MeasureConfig(inputs=(folder,), masks=folder, json_file=json_file, skip_existing=True))
    assert [p.name for p in result.existing] == ["a.png"] and [r["id"] for r in result.rows] == ["b"]
    assert [row["id"] for row in json.loads(json_file.read_text())] == ["a", "b"]


def test_measure_skip_existing_refuses_what_it_cannot_continue(tmp_path):
    folder = lesions(tmp_path / "in", "a")
    with pytest.raises(ConfigError, match="exclude each other"):
        MeasureConfig(inputs=(folder,), csv_file=tmp_path / "m.csv", skip_existing=True, overwrite=True)
    with pytest.raises(ConfigError, match="`skip_existing` continues `csv_file` or `json_file`"):
        MeasureConfig(inputs=(folder,), report=tmp_path / "m.html", skip_existing=True)
    other = tmp_path / "other.csv"
    other.write_text("name,score\nx,1\n")
    config = MeasureConfig(inputs=(folder,), masks=folder, csv_file=other, skip_existing=True)
    with pytest.raises(SkinsegError, match=r"has other columns than this command writes.*give another `csv_file`"):
        measure_paths(config)
    assert other.read_text() == "name,score\nx,1\n"


def test_an_interrupted_measure_says_how_to_continue(tmp_path):
    """Issue #33, case 17's rule for measure too: Ctrl-C printed only "interrupted"."""
    from skinseg.errors import Interrupted

    folder = lesions(tmp_path / "in", "a", "b")

    def interrupt_after_one(done: int, total: int) -> None:
        if done == 1:
            raise KeyboardInterrupt

    config = MeasureConfig(inputs=(folder,), masks=folder, csv_file=tmp_path / "m.csv")
    with pytest.raises(Interrupted, match=r"after 1 of 2 images, whose rows are written; .* `skip_existing`"):
        measure_paths(config, on_progress=interrupt_after_one)
    again = measure_paths(
        MeasureConfig(inputs=(folder,), masks=folder, csv_file=tmp_path / "m.csv", skip_existing=True)
    )
    assert [row["id"] for row in again.rows] == ["b"]


def test_skip_existing_fills_each_row_file_with_the_rows_it_lacks(tmp_path):
    """Found by review: with a new --json beside a complete --csv every image was skipped (the JSON left empty);
    a row that only one file had (a kill between the two writes) was written twice to it."""
    folder = lesions(tmp_path / "in", "a", "b")
    csv_file, json_file = tmp_path / "m.csv", tmp_path / "m.json"
    measure_paths(MeasureConfig(inputs=(folder,), masks=folder, csv_file=csv_file))
    before = csv_file.read_text()
    config = MeasureConfig(inputs=(folder,), masks=folder, csv_file=csv_file, json_file=json_file, skip_existing=True)
    result = measure_paths(config)
    assert [row["id"] for row in result.rows] == ["a", "b"] and csv_file.read_text() == before
    assert [row["id"] for row in json.loads(json_file.read_text())] == ["a", "b"]
    rows = json.loads(json_file.read_text())
    json_file.write_text(json.dumps(rows[:1]))  # b's row reached the CSV only
    again = measure_paths(config)
    assert [row["id"] for row in again.rows] == ["b"] and csv_file.read_text() == before
    assert [row["id"] for row in json.loads(json_file.read_text())] == ["a", "b"]


def test_a_json_file_cut_just_after_a_rows_comma_keeps_that_row(tmp_path):
    """Found by review: a short write that ended in the `,` before the next row dropped the last whole row."""
    path = tmp_path / "rows.json"
    path.write_text('[\n {"id": "a", "value": 1},\n {"id": "b", "value": 2},')
    with SummaryWriter(path, continued=True, columns=("id", "value")) as rows:
        rows.add({"id": "c", "value": 3})
    assert [row["id"] for row in json.loads(path.read_text())] == ["a", "b", "c"]


def test_a_command_that_writes_no_row_leaves_no_file_of_a_header_alone(tmp_path):
    """Found by review: every image unreadable left a header-only summary, and the rerun was refused ("exists")."""
    for name in ("m.csv", "m.json"):
        with SummaryWriter(tmp_path / name, columns=("id", "value")):
            pass
        assert not (tmp_path / name).exists()
