import numpy as np
import pytest

from skinseg.evaluation.metrics import confusion, image_metrics, summarise


def test_known_confusion_and_metrics():
    truth = np.zeros((4, 4), bool)
    truth[:2, :2] = True  # 4 lesion pixels
    pred = np.zeros((4, 4), bool)
    pred[:2, :3] = True  # 6 predicted, 4 of them right
    assert confusion(truth, pred) == (4, 2, 0, 10)
    m = image_metrics(truth, pred)
    assert m["dice"] == pytest.approx(8 / 10)
    assert m["jaccard"] == pytest.approx(4 / 6)
    assert m["threshold_jaccard"] == pytest.approx(4 / 6)
    assert m["sensitivity"] == 1.0
    assert m["specificity"] == pytest.approx(10 / 12)
    assert m["accuracy"] == pytest.approx(14 / 16)


def test_threshold_jaccard_is_zero_below_065():
    truth = np.zeros((10, 10), bool)
    truth[:5] = True
    pred = np.zeros((10, 10), bool)
    pred[:3] = True
    m = image_metrics(truth, pred)
    assert m["jaccard"] == pytest.approx(0.6)
    assert m["threshold_jaccard"] == 0.0


def test_empty_truth_and_prediction_score_one():
    empty = np.zeros((5, 5), bool)
    m = image_metrics(empty, empty)
    assert m["dice"] == m["jaccard"] == m["sensitivity"] == 1.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        confusion(np.zeros((2, 2)), np.zeros((3, 3)))


def test_summary_statistics():
    rows = [
        {"accuracy": v, "sensitivity": v, "specificity": v, "jaccard": v, "threshold_jaccard": v, "dice": v}
        for v in (0.2, 0.4, 0.9)
    ]
    s = summarise(rows)["dice"]
    assert s["mean"] == pytest.approx(0.5)
    assert s["median"] == pytest.approx(0.4)
    assert (s["min"], s["max"]) == (0.2, 0.9)


def test_the_summary_gives_each_mean_a_95_percent_bootstrap_interval():
    from skinseg.evaluation.metrics import METRIC_NAMES

    values = np.linspace(0.5, 1.0, 101)
    dice = summarise([dict.fromkeys(METRIC_NAMES, v) for v in values])["dice"]
    assert dice["mean"] == pytest.approx(0.75)
    assert dice["ci95_low"] < dice["mean"] < dice["ci95_high"]
    normal_width = 2 * 1.96 * values.std() / np.sqrt(len(values))  # what the normal approximation gives
    assert dice["ci95_high"] - dice["ci95_low"] == pytest.approx(normal_width, rel=0.2)


def test_rank_auc_is_mann_whitneys():
    from skinseg.evaluation.metrics import rank_auc

    positive = np.array([True, True, False, False])
    assert rank_auc(np.array([0.9, 0.8, 0.1, 0.2]), positive) == 1.0
    assert rank_auc(np.array([0.5, 0.5, 0.5, 0.5]), positive) == 0.5  # ties count half
    assert rank_auc(np.array([0.9, 0.3, 0.5, 0.2]), positive) == 0.75  # 3 of the 4 pairs in order
    assert np.isnan(rank_auc(np.array([0.1, 0.2]), np.array([True, True])))
