"""Per-image metrics as the official ISIC challenge scorer defines them.

For each image: a confusion matrix of the binarised prediction against the binarised truth, then
accuracy, sensitivity, specificity, Jaccard, threshold Jaccard (Jaccard if >= 0.65, else 0) and Dice,
with 1.0 where a ratio is 0/0. Dataset figures are unweighted means over images.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

METRIC_NAMES = ("accuracy", "sensitivity", "specificity", "jaccard", "threshold_jaccard", "dice")


def confusion(truth: np.ndarray, prediction: np.ndarray) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of two boolean masks of the same shape."""
    truth = np.asarray(truth, dtype=bool)
    prediction = np.asarray(prediction, dtype=bool)
    if truth.shape != prediction.shape:
        raise ValueError(f"mask shapes differ: truth {truth.shape}, prediction {prediction.shape}")
    tp = int(np.count_nonzero(truth & prediction))
    fp = int(np.count_nonzero(prediction)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    tn = truth.size - tp - fp - fn
    return tp, fp, fn, tn


def _ratio(numerator: float, denominator: float) -> float:
    return 1.0 if denominator == 0 else numerator / denominator


def image_metrics(truth: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    tp, fp, fn, tn = confusion(truth, prediction)
    jaccard = _ratio(tp, tp + fp + fn)
    return {
        "accuracy": _ratio(tp + tn, tp + fp + fn + tn),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "jaccard": jaccard,
        "threshold_jaccard": jaccard if jaccard >= 0.65 else 0.0,
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def summarise(per_image: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean (with its 95% bootstrap interval), std, median, min, max of each metric over images."""
    summary = {}
    for name in METRIC_NAMES:
        values = np.array([row[name] for row in per_image], dtype=np.float64)
        low, high = bootstrap_interval(values)
        summary[name] = {
            "mean": float(values.mean()),
            "ci95_low": low,
            "ci95_high": high,
            "std": float(values.std()),
            "median": float(np.median(values)),
            "min": float(values.min()),
            "max": float(values.max()),
        }
    return summary


def bootstrap_interval(values: Iterable[float], rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    """A 95% percentile bootstrap interval of the mean (images resampled with replacement)."""
    values = np.asarray(list(values), dtype=np.float64)
    rng = np.random.default_rng(seed)
    per_draw = max(1, 2_000_000 // max(1, len(values)))  # rounds drawn at once: at most 2M indices in memory
    means = np.concatenate(
        [
            values[rng.integers(0, len(values), (min(per_draw, rounds - start), len(values)))].mean(axis=1)
            for start in range(0, rounds, per_draw)
        ]
    )
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def rank_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The probability that a positive scores above a negative (ties count half): Mann-Whitney's AUC, as the
    measurement benchmarks score a column against experts' labels. NaN where either class is absent."""
    from scipy.stats import rankdata

    n_pos, n_neg = positive.sum(), (~positive).sum()
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
