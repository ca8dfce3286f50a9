"""`skinseg measure` (skinseg.inference.measure and its command): given masks or the model's, rows to CSV and
JSON, the output rules of every command, and bad input reported per image."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lesions import disc, paint, palette_srgb
from skinseg.errors import ConfigError, SkinsegError
from skinseg.inference.config import MeasureConfig
from skinseg.inference.measure import ROW_COLUMNS, measure_paths
from skinseg.inference.model_run import ModelRun
from skinseg.measurement import MEASURE_COLUMNS, TINY_DIAMETER
from test_cli import invoke
from test_threads import blas_on_two_threads, blas_threads


def lesion_files(folder, names=("a", "b"), mask_names=None):
    """Images with a brown disc each, and their masks named <id>_segmentation.png (or `mask_names`)."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i, name in enumerate(names):
        mask = disc(30 + 20 * i)
        Image.fromarray(paint([(mask, palette_srgb("dark_brown"))], seed=i)).save(folder / "images" / f"{name}.png")
        mask_name = (mask_names or {}).get(name, f"{name}_segmentation.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "masks" / mask_name)
    return folder / "images", folder / "masks"


def test_given_masks_are_measured_into_csv_and_json_with_the_same_rows(tmp_path):
    images, masks = lesion_files(tmp_path, mask_names={"b": "b.png"})  # a mask named as its image is paired too
    result = measure_paths(
        MeasureConfig(inputs=(images,), masks=masks, csv_file=tmp_path / "m.csv", json_file=tmp_path / "m.json")
    )
    assert [row["id"] for row in result.rows] == ["a", "b"] and not result.failed
    with open(tmp_path / "m.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == ROW_COLUMNS and ROW_COLUMNS[: len(MEASURE_COLUMNS)] == MEASURE_COLUMNS
    listed = json.loads((tmp_path / "m.json").read_text())
    assert [r["area_px"] for r in listed] == [int(r["area_px"]) for r in rows] == [disc(30).sum(), disc(50).sum()]
    assert listed[1]["mask"] == str(masks / "b.png")
    assert listed[0]["confidence"] is None and rows[0]["confidence"] == ""  # no model
    assert listed[0]["area_mm2"] is None and listed[0]["colour_dark_brown"] > 0.9


def test_pixel_size_fills_the_millimetre_columns(tmp_path):
    images, masks = lesion_files(tmp_path, names=("a",))
    config = MeasureConfig(inputs=(images,), masks=masks, json_file=tmp_path / "m.json", pixel_size=0.1)
    row = measure_paths(config).rows[0]
    assert row["area_mm2"] == pytest.approx(row["area_px"] * 0.01)


def test_the_models_masks_are_measured_with_their_confidence(tiny_model_path, tmp_path):
    images, _ = lesion_files(tmp_path)
    config = MeasureConfig(
        inputs=(images,), csv_file=tmp_path / "m.csv", run=ModelRun(model=tiny_model_path, device="cpu")
    )
    result = measure_paths(config)
    assert len(result.rows) == 2 and not result.failed
    for row in result.rows:
        assert row["mask"] == ""
        if row["area_px"]:  # the tiny model may find nothing: then a row with area 0
            assert 0.0 <= row["confidence"] <= 1.0 and row["components"] == 1
        else:
            assert row["id"] in result.empty and row["asymmetry"] is None


def test_images_without_a_mask_or_with_one_of_another_size_are_reported_and_the_rest_measured(tmp_path):
    images, masks = lesion_files(tmp_path, names=("a", "b", "c"))
    (masks / "b_segmentation.png").unlink()
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(masks / "c_segmentation.png")
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(masks / "stray_segmentation.png")
    result = measure_paths(MeasureConfig(inputs=(images,), masks=masks, csv_file=tmp_path / "m.csv"))
    assert [row["id"] for row in result.rows] == ["a"]
    reasons = dict((path.name, reason) for path, reason in result.failed)
    assert "no mask for it" in reasons["b.png"]
    assert all(name in reasons["b.png"] for name in ("<id>_segmentation.png", "<id>_mask.png", "<id>_lesion.png"))
    assert "is 12x10, the image 240x240" in reasons["c.png"]
    assert [p.name for p in result.unmatched_masks] == ["stray_segmentation.png"]


def test_given_masks_measured_in_threads_keep_the_images_order(tmp_path, monkeypatch):
    monkeypatch.setattr("skinseg.inference.measure.thread_count", lambda: 3)
    names = tuple("abcdefgh")
    images, masks = lesion_files(tmp_path, names=names)
    for name in "cf":  # fail, between images that do not
        Image.fromarray(np.zeros((10, 12), np.uint8)).save(masks / f"{name}_segmentation.png")
    result = measure_paths(MeasureConfig(inputs=(images,), masks=masks, csv_file=tmp_path / "m.csv"))
    assert [row["id"] for row in result.rows] == ["a", "b", "d", "e", "g", "h"]
    assert [path.name for path, _ in result.failed] == ["c.png", "f.png"]
    with open(tmp_path / "m.csv", newline="") as handle:
        assert [row["id"] for row in csv.DictReader(handle)] == ["a", "b", "d", "e", "g", "h"]
    assert [row["area_px"] for row in result.rows[:2]] == [disc(30).sum(), disc(50).sum()]


def test_outputs_follow_the_rules_of_every_command(tmp_path):
    images, masks = lesion_files(tmp_path, names=("a",))
    (tmp_path / "m.csv").write_text("mine\n")
    config = dict(inputs=(images,), masks=masks)
    with pytest.raises(SkinsegError, match="exists"):
        measure_paths(MeasureConfig(**config, csv_file=tmp_path / "m.csv"))
    assert (tmp_path / "m.csv").read_text() == "mine\n"
    measure_paths(MeasureConfig(**config, csv_file=tmp_path / "m.csv", overwrite=True))
    assert (tmp_path / "m.csv").read_text().startswith("id,area_px")
    with pytest.raises(SkinsegError, match="lies in"):  # never inside a folder that is read
        measure_paths(MeasureConfig(**config, csv_file=masks / "m.csv", overwrite=True))
    with pytest.raises(SkinsegError, match=r"name the file \.json"):
        measure_paths(MeasureConfig(**config, json_file=tmp_path / "m.csv"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "give `csv_file`, `json_file` or `report`"),
        ({"csv_file": "m.csv", "pixel_size": 0.0}, "`pixel_size` must be a number of mm from 0.0001 to 10"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        MeasureConfig(inputs=(), **settings)


def test_the_command_writes_a_report_and_says_what_it_did(tmp_path):
    images, masks = lesion_files(tmp_path)
    result = invoke("measure", images, "--masks", masks, "--csv", tmp_path / "m.csv", "--report", tmp_path / "m.html")
    assert result.exit_code == 0, result.output
    assert "measured 2 image(s) into" in result.output
    page = (tmp_path / "m.html").read_text()
    assert "skinseg measurements" in page and "asymmetric axes" in page and page.count("<tr data-rank=") == 2
    assert "px across" not in result.output  # no lesion is tiny


def test_tiny_lesions_are_measured_and_named(tmp_path):
    images, masks = lesion_files(tmp_path, names=("big", "speck"))
    speck = disc(5)  # about 9 px across: enlarged 7x for the fold
    Image.fromarray(speck.astype(np.uint8) * 255).save(masks / "speck_segmentation.png")
    result = measure_paths(MeasureConfig(inputs=(images,), masks=masks, csv_file=tmp_path / "m.csv"))
    assert result.tiny == ["speck"] and result.rows[1]["asymmetry"] is not None
    said = invoke("measure", images, "--masks", masks, "--csv", tmp_path / "n.csv")
    assert said.exit_code == 0, said.output
    assert f"1 lesion(s) under {TINY_DIAMETER} px across (first: speck): measured" in said.output


def test_the_command_fails_with_one_line_when_a_mask_is_missing(tmp_path):
    images, masks = lesion_files(tmp_path)
    (masks / "a_segmentation.png").unlink()
    result = invoke("measure", images, "--masks", masks, "--json", tmp_path / "m.json")
    assert result.exit_code == 1
    assert "measured 1 image(s)" in result.output and "skipped" in result.output and "a.png: no mask" in result.output
    assert "Traceback" not in result.output


def test_masks_beside_their_images_in_one_folder(tmp_path):
    images, masks = lesion_files(tmp_path)
    for mask in masks.iterdir():
        mask.rename(images / mask.name)
    result = measure_paths(MeasureConfig(inputs=(images,), masks=images, csv_file=tmp_path / "m.csv"))
    assert [row["id"] for row in result.rows] == ["a", "b"] and not result.failed
    assert result.rows[0]["mask"].endswith("a_segmentation.png")


def test_two_images_of_one_name_are_refused(tmp_path):
    first, masks = lesion_files(tmp_path / "x", names=("a",))
    second, _ = lesion_files(tmp_path / "y", names=("a",))
    with pytest.raises(SkinsegError, match="two input images are named a"):
        measure_paths(MeasureConfig(inputs=(first, second), masks=masks, csv_file=tmp_path / "m.csv"))


def test_model_options_do_not_go_with_given_masks():
    with pytest.raises(ConfigError, match="`model`, `tta` set how the model segments"):
        MeasureConfig(
            inputs=(), masks=Path("m"), csv_file=Path("m.csv"), run=ModelRun(model=Path("x.safetensors"), tta=True)
        )


def test_an_image_that_cannot_be_measured_is_reported_and_the_rest_go_on(tmp_path, monkeypatch):
    import skinseg.inference.measure as measure_module

    real = measure_module.measure_lesion

    def failing_on_b(image, mask, **options):
        if mask.sum() == disc(50).sum():
            raise MemoryError("no room")
        return real(image, mask, **options)

    monkeypatch.setattr(measure_module, "measure_lesion", failing_on_b)
    images, masks = lesion_files(tmp_path)
    result = measure_paths(MeasureConfig(inputs=(images,), masks=masks, json_file=tmp_path / "m.json"))
    assert [row["id"] for row in result.rows] == ["a"]
    failed = [(p.name, reason) for p, reason in result.failed]
    assert failed == [("b.png", "could not be measured: MemoryError: no room")]
    assert len(json.loads((tmp_path / "m.json").read_text())) == 1


def test_the_page_lists_the_most_asymmetric_first(tmp_path):
    images, masks = lesion_files(tmp_path, names=("round", "lshape"))
    mask = np.zeros((240, 240), np.uint8)
    mask[40:200, 40:90] = mask[150:200, 40:200] = 255
    Image.fromarray(mask).save(masks / "lshape_segmentation.png")
    measure_paths(MeasureConfig(inputs=(images,), masks=masks, csv_file=tmp_path / "m.csv", report=tmp_path / "p.html"))
    page = (tmp_path / "p.html").read_text()
    assert page.index('alt="lshape"') < page.index('alt="round"')


def test_a_photo_given_as_its_own_mask_or_any_mask_that_is_not_binary_is_refused(tmp_path):
    images, masks = lesion_files(tmp_path)
    Image.open(images / "b.png").save(masks / "b_segmentation.png")  # a photo, named as a mask
    result = measure_paths(MeasureConfig(inputs=(images,), masks=images, csv_file=tmp_path / "own.csv"))
    assert [reason for _, reason in result.failed] == ["is its own mask in `masks`: give the folder of its masks"] * 2
    result = measure_paths(MeasureConfig(inputs=(images,), masks=masks, csv_file=tmp_path / "m.csv"))
    assert [row["id"] for row in result.rows] == ["a"]
    assert "grey levels, expected 2 (a binary mask)" in result.failed[0][1]


def test_a_report_alone_is_an_output(tmp_path):
    images, masks = lesion_files(tmp_path, names=("a",))
    measure_paths(MeasureConfig(inputs=(images,), masks=masks, report=tmp_path / "p.html"))
    assert "colours" in (tmp_path / "p.html").read_text()


def test_lesions_are_measured_with_blas_on_one_thread(tmp_path, monkeypatch):
    """Measuring threads and BLAS's own threads fought over the cores: small products took 100 times as long."""
    import skinseg.inference.measure as measure_module

    seen = []

    def spied(*args, **kwargs):
        seen.append(blas_threads())
        return measure_lesion(*args, **kwargs)

    from skinseg.measurement import measure_lesion

    monkeypatch.setattr(measure_module, "measure_lesion", spied)
    images, masks = lesion_files(tmp_path)
    with blas_on_two_threads():
        measure_paths(MeasureConfig(inputs=(images,), masks=masks, csv_file=tmp_path / "m.csv"))
    assert seen == [[1] * len(seen[0])] * 2 and seen[0]
