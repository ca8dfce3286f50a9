"""Checks on the real ISIC 2018 images in ../shared; skipped where that folder is absent.

All 2,594 pairs are found, read as far as their headers and split; the full decode and resize of every one
of them is what `skinseg prepare` does in benchmarks (10 s of CPU, more than any other test here spent on
checking the data rather than the code). 40 real test pairs go through the whole product: prepare, then the
bundled model's evaluation."""

import dataclasses

import pytest
from PIL import Image

from conftest import ISIC_DIR
from skinseg.data.config import PrepareConfig
from skinseg.data.layouts import discover_pairs
from skinseg.data.prepare import prepare_dataset
from skinseg.data.splits import assign_splits
from skinseg.evaluation.config import EvaluateConfig
from skinseg.inference.model_run import ModelRun
from skinseg.models.weights import bundled_model_path

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ISIC_DIR.is_dir(), reason="real ISIC 2018 data not present (../shared)"),
]
IMAGES, MASKS = "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"
PREPARE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(PrepareConfig)}  # the split 60/20/20, seed 0


@pytest.fixture(scope="module")
def discovery():
    return discover_pairs(ISIC_DIR)


def test_every_pair_is_found_read_and_split(discovery):
    assert discovery.layout == "isic2018" and discovery.problems == []
    assert len(discovery.pairs) == 2594
    for pair in discovery.pairs:  # headers only: format, mode and size
        with Image.open(pair.image) as image, Image.open(pair.mask) as mask:
            assert image.format == "JPEG" and mask.format == "PNG" and mask.mode in ("L", "1"), pair.id
            assert image.size == mask.size, pair.id
    splits = assign_splits([p.id for p in discovery.pairs], PREPARE_DEFAULTS["split"], PREPARE_DEFAULTS["seed"])
    assert {name: splits.count(name) for name in ("train", "val", "test")} == {"train": 1561, "val": 519, "test": 514}


def test_bundled_model_segments_real_test_images_well(discovery, tmp_path):
    if not bundled_model_path().is_file():
        pytest.skip("no bundled model in this checkout")
    from skinseg.evaluation.scoring import evaluate_model

    splits = assign_splits([p.id for p in discovery.pairs], PREPARE_DEFAULTS["split"], PREPARE_DEFAULTS["seed"])
    test_pairs = [pair for pair, split in zip(discovery.pairs, splits, strict=True) if split == "test"][:40]
    subset = tmp_path / "isic-subset"  # the official layout, linked: its ids keep their splits
    (subset / IMAGES).mkdir(parents=True)
    (subset / MASKS).mkdir()
    for pair in test_pairs:
        (subset / IMAGES / pair.image.name).symlink_to(pair.image)
        (subset / MASKS / pair.mask.name).symlink_to(pair.mask)
    prepared = prepare_dataset(PrepareConfig(data=subset, out=tmp_path / "prepared", size=64, workers=1))
    assert prepared.layout == "isic2018" and prepared.count == 40 and prepared.skipped == []
    assert prepared.split_sizes == {"train": 0, "val": 0, "test": 40}
    report = evaluate_model(
        EvaluateConfig(data=prepared.out_dir, run=ModelRun(model=None, device="cpu", batch_size=16))
    )
    assert len(report.per_image) == 40
    assert report.summary["dice"]["mean"] > 0.8
