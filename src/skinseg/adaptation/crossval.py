"""Cross-validation on the user's own images: each candidate's Dice on images it was not fitted on, and the
rule that picks one.

Folds hold the images out in turn. Each candidate gets an out-of-fold Dice per image:

- `unchanged`: the starting model at its own threshold and boundary offset (nothing fitted);
- `calibrated`: the starting model at the setting (threshold, boundary offset) that scored best on the other
  folds;
- `fine-tuned`: per fold, a model fine-tuned on the other folds, at the setting that scored best on the other
  folds' out-of-fold predictions.

A candidate other than `unchanged` is chosen only where its gain over `unchanged` is sure: the lower end of the
bootstrap interval of the mean gain per image is above zero, the interval's error rate split between the
candidates compared (Bonferroni), so that trying two does not double the chance of a false gain. Among the sure
ones, the largest mean gain wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skinseg.adaptation.scoring import Setting

UNCHANGED, CALIBRATED, FINE_TUNED = "unchanged", "calibrated", "fine-tuned"
CANDIDATES = (UNCHANGED, CALIBRATED, FINE_TUNED)
CONFIDENCE = 0.95  # of every interval reported and of the rule
BOOTSTRAP_SAMPLES = 2000
TOLERANCE = 0.002  # mean Dice: settings this close to the best count as equally good


def folds_of(count: int, folds: int, seed: int) -> np.ndarray:
    """The fold of each of `count` images: a seeded shuffle dealt round-robin, so fold sizes differ by one."""
    order = np.random.default_rng(seed).permutation(count)
    fold = np.empty(count, dtype=int)
    fold[order] = np.arange(count) % folds
    return fold


def out_of_fold_setting(
    table: np.ndarray, fold: np.ndarray, settings: tuple[Setting, ...], own: Setting
) -> tuple[np.ndarray, list]:
    """Given per-image Dice at each of `settings` (a table (len(settings), N)), each image's Dice at the setting
    picked on the other folds (`best_setting`), and that setting."""
    scores, picked = np.empty(table.shape[1]), [own] * table.shape[1]
    for f in np.unique(fold):
        held = np.flatnonzero(fold == f)
        best = _best_row(table[:, fold != f], settings, own)
        scores[held] = table[best, held]
        for i in held:
            picked[i] = settings[best]
    return scores, picked


def _best_row(table: np.ndarray, settings: tuple[Setting, ...], own: Setting) -> int:
    """Among the settings whose mean Dice is within TOLERANCE of the best, the one nearest the model's `own`:
    a shrinkage toward changing nothing, since a difference that small is noise on a few images."""
    means = table.mean(axis=1)
    near_best = np.flatnonzero(means >= means.max() - TOLERANCE)
    return int(min(near_best, key=lambda i: abs(settings[i][0] - own[0]) / 0.1 + abs(settings[i][1] - own[1]) / 0.02))


def best_setting(table: np.ndarray, settings: tuple[Setting, ...], own: Setting) -> Setting:
    """The setting picked on all the images: the best mean Dice, shrunk toward the model's `own` (_best_row)."""
    return settings[_best_row(table, settings, own)]


def interval(values: np.ndarray, seed: int = 0, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile bootstrap interval (`confidence`) of the mean of `values`."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (BOOTSTRAP_SAMPLES, len(values)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Estimate:
    """A candidate's out-of-fold Dice: the mean and its interval, and its gain over `unchanged`."""

    name: str
    dice: float
    dice_interval: tuple[float, float]
    gain: float
    gain_interval: tuple[float, float]
    gain_low: float  # the lower end of the gain's interval at the rule's stricter confidence (`choose`)

    def to_dict(self) -> dict:
        return {
            "dice": round(self.dice, 4),
            "dice_interval": [round(v, 4) for v in self.dice_interval],
            "gain": round(self.gain, 4),
            "gain_interval": [round(v, 4) for v in self.gain_interval],
        }


def estimate(name: str, scores: np.ndarray, unchanged: np.ndarray, compared: int = 1) -> Estimate:
    """A candidate's figures; `compared`: how many candidates the rule weighs against `unchanged`."""
    gains = scores - unchanged
    strict = 1 - (1 - CONFIDENCE) / max(1, compared)
    return Estimate(
        name,
        float(scores.mean()),
        interval(scores),
        float(gains.mean()),
        interval(gains),
        interval(gains, confidence=strict)[0],
    )


def choose(estimates: list[Estimate]) -> Estimate:
    """The candidate with the largest sure gain over `unchanged`, or `unchanged` where none is sure."""
    sure = [e for e in estimates if e.name != UNCHANGED and e.gain_low > 0]
    if not sure:
        return next(e for e in estimates if e.name == UNCHANGED)
    return max(sure, key=lambda e: e.gain)
