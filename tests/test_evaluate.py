import json

import pytest

from skinseg.errors import SkinsegError
from skinseg.evaluation.config import EvaluateConfig
from skinseg.evaluation.reports import write_reports
from skinseg.evaluation.scoring import evaluate_folders, evaluate_model
from skinseg.inference.config import SegmentConfig
from skinseg.inference.segment import segment_paths


def test_model_evaluation_matches_scoring_segment_output(tiny_model_path, prepared_dir, raw_dir, tmp_path):
    report = evaluate_model(EvaluateConfig(model=tiny_model_path, data=prepared_dir, split="all", device="cpu"))
    assert len(report.per_image) == 30
    segment_paths(
        SegmentConfig(inputs=(raw_dir / "images",), output=tmp_path / "pred", model=tiny_model_path, device="cpu")
    )
    from_files = evaluate_folders(tmp_path / "pred", raw_dir / "masks")
    assert from_files.summary["dice"]["mean"] == pytest.approx(report.summary["dice"]["mean"], abs=1e-12)
    assert 0.5 < report.summary["dice"]["mean"] <= 1


def test_reports_are_written(tiny_model_path, prepared_dir, tmp_path):
    report = evaluate_model(EvaluateConfig(model=tiny_model_path, data=prepared_dir, device="cpu"))
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


def test_a_raw_folder_is_scored_on_the_split_train_used_and_says_where(raw_dir, tiny_model_path, tmp_path, monkeypatch):
    from skinseg.data.dataset import ensure_prepared
    from skinseg.evaluation.config import EvaluateConfig
    from skinseg.evaluation.scoring import evaluate_model

    monkeypatch.setenv("SKINSEG_CACHE", str(tmp_path / "cache"))
    report = evaluate_model(EvaluateConfig(model=tiny_model_path, data=raw_dir, device="cpu"))
    prepared = ensure_prepared(raw_dir, 48, split_seed=0)
    test_ids = {item["id"] for item in prepared.manifest["items"] if item["split"] == "test"}
    assert {row["id"] for row in report.per_image} == test_ids and len(test_ids) < 30
    assert f"test split of {raw_dir}" in report.title and str(prepared.root) in report.title
    everything = evaluate_model(EvaluateConfig(model=tiny_model_path, data=raw_dir, split="all", device="cpu"))
    assert len(everything.per_image) == 30
