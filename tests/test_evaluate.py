import json
from pathlib import Path

import pytest

from skinseg.errors import SkinsegError
from skinseg.evaluation.config import EvaluateConfig
from skinseg.evaluation.reports import write_reports
from skinseg.evaluation.scoring import evaluate_folders, evaluate_model
from skinseg.inference.config import SegmentConfig
from skinseg.inference.model_run import ModelRun
from skinseg.inference.segment import segment_paths


def test_model_evaluation_matches_scoring_segment_output(tiny_model_path, prepared_dir, raw_dir, tmp_path):
    report = evaluate_model(
        EvaluateConfig(data=prepared_dir, split="all", run=ModelRun(model=tiny_model_path, device="cpu", batch_size=16))
    )
    assert len(report.per_image) == 30
    segment_paths(
        SegmentConfig(
            inputs=(raw_dir / "images",), output=tmp_path / "pred", run=ModelRun(model=tiny_model_path, device="cpu")
        )
    )
    from_files = evaluate_folders(tmp_path / "pred", raw_dir / "masks")
    assert from_files.summary["dice"]["mean"] == pytest.approx(report.summary["dice"]["mean"], abs=1e-12)
    assert 0.5 < report.summary["dice"]["mean"] <= 1


def test_reports_are_written(tiny_model_path, prepared_dir, tmp_path):
    report = evaluate_model(
        EvaluateConfig(data=prepared_dir, run=ModelRun(model=tiny_model_path, device="cpu", batch_size=16))
    )
    write_reports(report, json_file=tmp_path / "r.json", csv_file=tmp_path / "r.csv", figures=tmp_path / "fig")
    data = json.loads((tmp_path / "r.json").read_text())
    assert set(data["macro_average"]) == {
        "accuracy",
        "sensitivity",
        "specificity",
        "jaccard",
        "threshold_jaccard",
        "dice",
    }
    assert len(data["per_image"]) == len(report.per_image)
    assert (tmp_path / "r.csv").read_text().splitlines()[0].startswith("id,accuracy")
    assert (tmp_path / "fig" / "cases.png").stat().st_size > 1000
    assert (tmp_path / "fig" / "dice_histogram.png").stat().st_size > 1000


def test_missing_predictions_are_named(raw_dir, tmp_path):
    (tmp_path / "pred").mkdir()
    with pytest.raises(SkinsegError, match="no prediction for 30 of 30"):
        evaluate_folders(tmp_path / "pred", raw_dir / "masks")


def test_a_raw_folder_is_scored_whole_or_on_a_split_train_used(raw_dir, tiny_model_path, tmp_path, monkeypatch):
    from skinseg.data.dataset import ensure_prepared
    from skinseg.evaluation.config import EvaluateConfig
    from skinseg.evaluation.scoring import evaluate_model

    monkeypatch.setenv("SKINSEG_CACHE", str(tmp_path / "cache"))
    whole = evaluate_model(
        EvaluateConfig(data=raw_dir, run=ModelRun(model=tiny_model_path, device="cpu", batch_size=16))
    )
    assert len(whole.per_image) == 30 and whole.settings and whole.settings["split"] == "all"  # issue #21, as the docs
    assert not (tmp_path / "cache").exists()  # a raw folder scored whole needs no cache
    assert f"on the whole of {raw_dir} (30 pairs)" in whole.title
    report = evaluate_model(
        EvaluateConfig(data=raw_dir, split="test", run=ModelRun(model=tiny_model_path, device="cpu", batch_size=16))
    )
    prepared = ensure_prepared(raw_dir, 48, split_seed=0)
    test_ids = {item["id"] for item in prepared.manifest["items"] if item["split"] == "test"}
    assert {row["id"] for row in report.per_image} == test_ids and len(test_ids) < 30
    assert f"test split of {raw_dir}" in report.title and str(prepared.root) in report.title
    everything = evaluate_model(
        EvaluateConfig(data=raw_dir, split="all", run=ModelRun(model=tiny_model_path, device="cpu", batch_size=16))
    )
    assert len(everything.per_image) == 30


def test_an_unknown_split_lists_the_choices(raw_dir):
    """Issue #21: `--split bogus` said only that the prepared dataset has no 'bogus' images."""
    from skinseg.evaluation.config import EvaluateConfig

    with pytest.raises(SkinsegError, match="unknown split 'bogus'; choose one of train, val, test, all"):
        EvaluateConfig(data=raw_dir, split="bogus", run=ModelRun(model=None, batch_size=16))


def test_a_raw_folder_scored_whole_says_what_it_left_out(raw_dir, tiny_model_path, tmp_path):
    """#21's attacker trial: with one mask removed, evaluate --data RAW scored 11 images without a word."""
    import shutil

    from skinseg.evaluation.config import EvaluateConfig
    from skinseg.evaluation.scoring import evaluate_model

    raw = Path(shutil.copytree(raw_dir, tmp_path / "raw"))
    (raw / "masks" / "case_003_segmentation.png").unlink()
    report = evaluate_model(EvaluateConfig(data=raw, run=ModelRun(model=tiny_model_path, device="cpu", batch_size=16)))
    assert len(report.per_image) == 29
    assert "(29 pairs; 1 files left out, first" in report.title and "case_003" in report.title


def test_two_masks_for_one_image_are_refused(tmp_path):
    """#21's attacker trial: f_segmentation.png beside f_mask.png was resolved to one of them without a word."""
    from PIL import Image

    for folder in ("pred", "truth"):
        (tmp_path / folder).mkdir()
        Image.new("L", (8, 8)).save(tmp_path / folder / "f_segmentation.png")
    Image.new("L", (8, 8)).save(tmp_path / "pred" / "f_mask.png")
    with pytest.raises(SkinsegError, match=r"two masks for f: f_mask\.png and f_segmentation\.png"):
        evaluate_folders(tmp_path / "pred", tmp_path / "truth")
