"""What `segment` writes for the work after segmentation (issue #24): lesion crops, COCO annotations, and the
measurements of `skinseg measure` in the summary and the reports."""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from skinseg.data.images import load_mask, load_rgb
from skinseg.errors import ConfigError, SkinsegError
from skinseg.evaluation.config import EvaluateConfig
from skinseg.evaluation.scoring import evaluate_model
from skinseg.inference.config import SegmentConfig
from skinseg.inference.model_run import ModelRun
from skinseg.inference.segment import segment_paths
from skinseg.inference.segmenter import Segmenter
from skinseg.inference.summary import SUMMARY_COLUMNS
from skinseg.measurement import MEASURE_COLUMNS
from skinseg.reporting.html import ReportCases, evaluation_page
from test_cli import invoke

pycocotools = pytest.importorskip("pycocotools.coco")
SAMPLES = REPO / "samples" / "images"


def read_coco(path):
    with contextlib.redirect_stdout(io.StringIO()):
        return pycocotools.COCO(str(path))


def test_the_samples_crops_coco_and_measurements_with_the_bundled_model(tmp_path):
    """Real images: each crop lies in its image and holds its lesion; pycocotools gives back each mask."""
    out = tmp_path / "out"
    config = SegmentConfig(
        inputs=(SAMPLES,),
        output=out / "masks",
        crops=out / "crops",
        crop_square=True,
        coco=out / "coco.json",
        measure=True,
        summary=out / "summary.csv",
        report=out / "page.html",
        run=ModelRun(device="cpu"),
    )
    result = segment_paths(config)
    assert len(result.written) == 4 and not result.failed and not result.uncropped
    coco = read_coco(out / "coco.json")
    by_name = {image["file_name"]: image for image in coco.loadImgs(coco.getImgIds())}
    assert sorted(by_name) == sorted(p.name for p in SAMPLES.glob("*.jpg"))
    for source in sorted(SAMPLES.glob("*.jpg")):
        image, mask = load_rgb(source), load_mask(out / "masks" / f"{source.stem}_segmentation.png")
        crop = load_rgb(out / "crops" / f"{source.stem}_crop.png")
        rows, cols = np.nonzero(mask)
        assert crop.shape[0] == crop.shape[1] <= min(image.shape[:2])  # square, inside the image
        assert crop.shape[0] >= max(np.ptp(rows), np.ptp(cols)) + 1  # holds the lesion's box
        (annotation,) = coco.loadAnns(coco.getAnnIds(imgIds=by_name[source.name]["id"]))
        back = coco.annToMask(annotation).astype(bool)
        assert (back & mask).sum() / (back | mask).sum() >= 0.98
    with open(out / "summary.csv", newline="") as handle:
        summary = list(csv.DictReader(handle))
    assert tuple(summary[0]) == (*SUMMARY_COLUMNS, *MEASURE_COLUMNS[1:])
    assert all(0 <= float(row["asymmetry"]) <= 1 and row["confidence"] for row in summary)
    page = (out / "page.html").read_text()
    assert "asymmetric axes" in page and "border irregularity" in page


def test_an_image_without_a_lesion_is_reported_not_cropped(tiny_model_path, tmp_path, monkeypatch):
    monkeypatch.setattr(Segmenter, "masks_from", lambda self, probs: [np.zeros(p.shape, bool) for p in probs])
    images = tmp_path / "in"
    images.mkdir()
    shutil.copy(next(SAMPLES.glob("*.jpg")), images / "a.jpg")
    config = SegmentConfig(
        inputs=(images,),
        output=tmp_path / "m",
        crops=tmp_path / "c",
        coco=tmp_path / "c.json",
        measure=True,
        summary=tmp_path / "s.json",
        run=ModelRun(model=tiny_model_path, device="cpu"),
    )
    result = segment_paths(config)
    assert [p.name for p in result.uncropped] == ["a.jpg"] and not (tmp_path / "c").exists()  # made for a crop
    coco = read_coco(tmp_path / "c.json")
    assert len(coco.getImgIds()) == 1 and coco.getAnnIds() == []
    assert result.rows[0]["area_px"] == 0 and result.rows[0]["asymmetry"] is None


def test_coco_follows_the_output_rules_and_skip_existing_keeps_every_image(tiny_model_path, tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    for source in sorted(SAMPLES.glob("*.jpg"))[:2]:
        shutil.copy(source, images / source.name)
    config = dict(inputs=(images,), output=tmp_path / "m", coco=tmp_path / "c.json")
    segment_paths(SegmentConfig(**config, run=ModelRun(model=tiny_model_path, device="cpu")))
    with pytest.raises(SkinsegError, match="exists"):
        segment_paths(SegmentConfig(**config, run=ModelRun(model=tiny_model_path, device="cpu")))
    with pytest.raises(SkinsegError, match=r"name the file \.json"):
        segment_paths(
            SegmentConfig(**{**config, "coco": tmp_path / "c.txt"}, run=ModelRun(model=tiny_model_path, device="cpu"))
        )
    (tmp_path / "m" / f"{sorted(SAMPLES.glob('*.jpg'))[0].stem}_segmentation.png").unlink()
    result = segment_paths(
        SegmentConfig(**config, skip_existing=True, run=ModelRun(model=tiny_model_path, device="cpu"))
    )
    assert len(result.written) == 1 and len(result.existing) == 1
    assert len(read_coco(tmp_path / "c.json").getImgIds()) == 2  # the kept mask is in the file too


def test_crops_are_not_taken_for_images_to_segment(tiny_model_path, tmp_path):
    """`segment DIR --crops DIR` twice: the crops (<stem>_crop.png) are left out of the inputs, as masks are."""
    images = tmp_path / "in"
    images.mkdir()
    shutil.copy(next(SAMPLES.glob("*.jpg")), images / "a.jpg")
    config = dict(inputs=(images,), output=images, crops=images, run=ModelRun(model=tiny_model_path, device="cpu"))
    first = segment_paths(SegmentConfig(**config))
    assert (images / "a_crop.png").exists() or first.uncropped  # the tiny model may find no lesion
    (images / "a_crop.png").write_bytes((images / "a.jpg").read_bytes())  # a crop there, whatever the model found
    result = segment_paths(SegmentConfig(**config, skip_existing=True))
    assert {p.name for p in result.ignored} == {"a_segmentation.png", "a_crop.png"}
    assert result.existing == [images / "a.jpg"]


def test_the_evaluation_page_shows_the_predictions_measurements(tiny_model_path, prepared_dir):
    cases = ReportCases()
    report = evaluate_model(
        EvaluateConfig(data=prepared_dir, run=ModelRun(model=tiny_model_path, device="cpu", batch_size=16)), cases=cases
    )
    assert cases.rows and all("asymmetry" in row and "colour_count" in row for row in cases.rows)
    page = evaluation_page(report, cases)
    assert "asymmetric axes" in page and "colours" in page


def write_images(folder, count):
    folder.mkdir()
    for source in sorted(SAMPLES.glob("*.jpg"))[:count]:
        shutil.copy(source, folder / source.name)
    return folder


def test_skip_existing_cuts_missing_crops_from_the_kept_masks_and_never_segments_a_lesionless_image_again(
    tiny_model_path, tmp_path
):
    images = write_images(tmp_path / "in", 2)
    stems = [p.stem for p in sorted(images.glob("*.jpg"))]
    masks = tmp_path / "m"
    masks.mkdir()
    full = np.zeros((512, 512), np.uint8)
    full[100:300, 150:350] = 255
    Image.fromarray(full).save(masks / f"{stems[0]}_segmentation.png")  # a lesion, made earlier
    Image.fromarray(np.zeros((512, 512), np.uint8)).save(masks / f"{stems[1]}_segmentation.png")  # none
    config = dict(
        inputs=(images,),
        output=masks,
        crops=tmp_path / "c",
        coco=tmp_path / "c.json",
        summary=tmp_path / "s.csv",
        run=ModelRun(model=tiny_model_path, device="cpu"),
        skip_existing=True,
    )
    for _ in range(2):  # the second run finds everything done
        result = segment_paths(SegmentConfig(**config))
        assert len(result.existing) == 2 and not result.written and not result.completed
    assert load_rgb(tmp_path / "c" / f"{stems[0]}_crop.png").shape == (240, 240, 3)  # 200 x 200 and a tenth around
    assert not (tmp_path / "c" / f"{stems[1]}_crop.png").exists()
    coco = read_coco(tmp_path / "c.json")
    (annotation,) = coco.loadAnns(coco.getAnnIds())
    assert annotation["area"] == 200 * 200 and annotation["bbox"] == [150, 100, 200, 200]
    assert (tmp_path / "s.csv").read_text().count("\n") == 1  # the header: no image was segmented


def test_what_completes_a_kept_mask_is_made_from_it(tiny_model_path, tmp_path):
    """An overlay asked for later: the image is segmented again for it, but the crop, the COCO entry and the
    summary row follow the mask that --skip-existing keeps, not the new prediction."""
    images = write_images(tmp_path / "in", 1)
    masks = tmp_path / "m"
    masks.mkdir()
    kept = np.zeros((512, 512), np.uint8)
    kept[10:60, 20:100] = 255
    Image.fromarray(kept).save(masks / f"{next(images.glob('*.jpg')).stem}_segmentation.png")
    config = SegmentConfig(
        inputs=(images,),
        output=masks,
        overlay=True,
        crops=tmp_path / "c",
        coco=tmp_path / "c.json",
        measure=True,
        summary=tmp_path / "s.csv",
        crop_margin=0.0,
        skip_existing=True,
        run=ModelRun(model=tiny_model_path, device="cpu"),
    )
    result = segment_paths(config)
    assert len(result.completed) == 1
    assert result.rows[0]["lesion_pixels"] == result.rows[0]["area_px"] == 50 * 80
    assert load_rgb(next((tmp_path / "c").iterdir())).shape == (50, 80, 3)
    assert read_coco(tmp_path / "c.json").loadAnns(1)[0]["area"] == 50 * 80


def test_a_summary_is_continued_only_with_the_same_columns(tiny_model_path, tmp_path):
    images = write_images(tmp_path / "in", 2)
    config = dict(inputs=(images,), output=tmp_path / "m", summary=tmp_path / "s.csv")
    segment_paths(SegmentConfig(**config, run=ModelRun(model=tiny_model_path, device="cpu")))
    next((tmp_path / "m").iterdir()).unlink()
    # a trial met only "has other columns": it names the setting that continues it
    with pytest.raises(SkinsegError, match="was written without `measure`: continue it without `measure`"):
        segment_paths(
            SegmentConfig(**config, skip_existing=True, measure=True, run=ModelRun(model=tiny_model_path, device="cpu"))
        )
    result = segment_paths(
        SegmentConfig(**config, skip_existing=True, run=ModelRun(model=tiny_model_path, device="cpu"))
    )
    assert len(result.written) == 1
    (tmp_path / "s.csv").write_text("id,colour\na,red\n")  # neither kind
    with pytest.raises(SkinsegError, match="has other columns than this command writes"):
        segment_paths(SegmentConfig(**config, skip_existing=True, run=ModelRun(model=tiny_model_path, device="cpu")))
    measured = dict(config, summary=tmp_path / "measured.csv", output=tmp_path / "m2")
    run = ModelRun(model=tiny_model_path, device="cpu")
    segment_paths(SegmentConfig(**measured, measure=True, run=run))
    next((tmp_path / "m2").iterdir()).unlink()
    with pytest.raises(SkinsegError, match="was written with `measure`: continue it with `measure`"):
        segment_paths(SegmentConfig(**measured, skip_existing=True, run=run))


def test_crops_and_another_output_may_not_name_one_path(tmp_path):
    images = write_images(tmp_path / "in", 1)
    for other in ({"coco": tmp_path / "k.json"}, {"summary": tmp_path / "k.json"}):
        with pytest.raises(SkinsegError, match="name one path"):
            segment_paths(SegmentConfig(inputs=(images,), output=tmp_path / "m", crops=tmp_path / "k.json", **other))
    assert not (tmp_path / "m").exists() and not (tmp_path / "k.json").exists()


@pytest.mark.parametrize("margin", [-0.1, float("inf"), float("nan"), 1e308, 10.5])
def test_a_crop_margin_that_is_no_fraction_is_refused(margin):
    """1e308 (found by the fresh-eyes trial of issue #33) overflowed in the crop's box: a traceback."""
    with pytest.raises(ConfigError, match=r"`crop_margin` must be (a finite number|between 0 and 10)"):
        SegmentConfig(inputs=(), output=Path("m"), crop_margin=margin)


def test_the_command_says_where_crops_annotations_summary_and_report_went(tiny_model_path, tmp_path):
    images = write_images(tmp_path / "in", 1)
    result = invoke(
        "segment", images, "-o", tmp_path / "m", "--crops", tmp_path / "c", "--crop-size", 64, "--crop-square",
        "--coco", tmp_path / "c.json", "--model", tiny_model_path, "--device", "cpu",
        "--summary", tmp_path / "s.csv", "--report", tmp_path / "r.html",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"COCO annotations in {tmp_path / 'c.json'}" in result.output
    assert f"summary in {tmp_path / 's.csv'}" in result.output  # a trial found these two unsaid
    assert f"report in {tmp_path / 'r.html'}" in result.output
    crops = list((tmp_path / "c").glob("*_crop.png"))
    assert f"wrote {len(crops)} crop(s) to {tmp_path / 'c'}" in result.output
    assert all(load_rgb(p).shape == (64, 64, 3) for p in crops)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"crop_size": 64}, "need `crops`"),
        ({"crop_square": True}, "need `crops`"),
        ({"measure": True}, "`measure` adds columns to `summary` and `report`"),
        ({"pixel_size": 0.02}, "`pixel_size` goes with `measure`"),
        ({"pixel_size": 0.0, "measure": True, "summary": Path("s.csv")}, "`pixel_size` must be a number of mm from"),
    ],
)
def test_options_that_would_do_nothing_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        SegmentConfig(inputs=(), output=Path("m"), **settings)


def test_segment_measure_fills_the_millimetres_and_a_report_is_made_anew_by_skip_existing(tiny_model_path, tmp_path):
    images = write_images(tmp_path / "in", 2)
    config = dict(
        inputs=(images,),
        output=tmp_path / "m",
        summary=tmp_path / "s.json",
        report=tmp_path / "r.html",
        measure=True,
        pixel_size=0.02,
        run=ModelRun(model=tiny_model_path, device="cpu"),
    )
    result = segment_paths(SegmentConfig(**config))
    measured = [row for row in result.rows if row["area_px"]]
    assert all(row["area_mm2"] == pytest.approx(row["area_px"] * 0.0004, abs=1e-3) for row in measured)
    next((tmp_path / "m").iterdir()).unlink()
    again = segment_paths(SegmentConfig(**config, skip_existing=True))  # the page exists: made anew, not refused
    assert len(again.written) == 1 and "segmented</th><td>1<" in (tmp_path / "r.html").read_text()


def test_measured_beside_the_model_with_blas_on_one_thread(tiny_model_path, tmp_path, monkeypatch):
    """The measurements ran beside the model's threads, and BLAS's own threads fought both for the cores."""
    import skinseg.measurement
    from test_threads import blas_on_two_threads, blas_threads

    measure_lesion, seen = skinseg.measurement.measure_lesion, []

    def spied(*args, **kwargs):
        seen.append(blas_threads())
        return measure_lesion(*args, **kwargs)

    monkeypatch.setattr(skinseg.measurement, "measure_lesion", spied)
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a", "b"):
        shutil.copy(SAMPLES / "ISIC_0000056.jpg", images / f"{name}.jpg")
    config = SegmentConfig(
        inputs=(images,),
        output=tmp_path / "masks",
        measure=True,
        summary=tmp_path / "s.csv",
        run=ModelRun(model=tiny_model_path, device="cpu"),
    )
    with blas_on_two_threads():
        segment_paths(config)
    assert seen == [[1] * len(seen[0])] * 2 and seen[0]


def test_the_evaluation_measures_with_blas_on_one_thread(tiny_model_path, prepared_dir, monkeypatch):
    """Measured right after each forward, BLAS woke its own threads beside torch's (40 images: 9.51 s, 9.36 s)."""
    import skinseg.evaluation.scoring as scoring
    from test_threads import blas_on_two_threads, blas_threads

    measure_lesion, seen = scoring.measure_lesion, []

    def spied(*args, **kwargs):
        seen.append(blas_threads())
        return measure_lesion(*args, **kwargs)

    monkeypatch.setattr(scoring, "measure_lesion", spied)
    config = EvaluateConfig(data=prepared_dir, run=ModelRun(model=tiny_model_path, device="cpu"))
    with blas_on_two_threads():
        evaluate_model(config, cases=ReportCases())
        assert seen and all(counts == [1] * len(counts) and counts for counts in seen)
        seen.clear()
        evaluate_model(config)  # no page, nothing measured: BLAS as it was
        assert not seen and set(blas_threads()) == {2}
