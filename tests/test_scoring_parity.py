"""skinseg's metrics against the official ISIC challenge scorer, on the same mask files."""

import numpy as np
import pytest
from PIL import Image

from skinseg.evaluation.metrics import METRIC_NAMES
from skinseg.evaluation.scoring import evaluate_folders


@pytest.fixture(scope="module")
def scoring():
    """The official scorer; imported here rather than at collection, where it would cost every pytest-xdist worker
    two seconds (pandas and more)."""
    return pytest.importorskip("isic_challenge_scoring.segmentation")


def _write_random_masks(root, rng, count=25):
    truth, pred = root / "truth", root / "pred"
    truth.mkdir()
    pred.mkdir()
    for i in range(count):
        shape = tuple(rng.integers(8, 60, 2))
        t = rng.random(shape) < rng.choice([0.0, 0.1, 0.5, 1.0])
        p = rng.random(shape) < rng.choice([0.0, 0.3, 0.7, 1.0])
        if i % 3 == 0:
            p = t.copy()
            p[: shape[0] // 3] = ~p[: shape[0] // 3]
        Image.fromarray(np.where(t, 255, 0).astype(np.uint8)).save(truth / f"ISIC_{i:07d}_segmentation.png")
        Image.fromarray(np.where(p, 255, 0).astype(np.uint8)).save(pred / f"ISIC_{i:07d}_segmentation.png")
    return truth, pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_agree_with_the_official_scorer(scoring, tmp_path, seed):
    truth, pred = _write_random_masks(tmp_path, np.random.default_rng(seed))
    official = scoring.SegmentationScore.from_dir(truth, pred).to_dict()["macro_average"]
    ours = evaluate_folders(pred, truth)
    for name in METRIC_NAMES:
        assert ours.summary[name]["mean"] == pytest.approx(official[name], abs=1e-9), name
