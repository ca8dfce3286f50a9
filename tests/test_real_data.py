"""Checks on the real ISIC 2018 images in ../shared; skipped where that folder is absent."""

import pytest

from conftest import ISIC_DIR
from skinseg.config import EvaluateConfig, PrepareConfig
from skinseg.data.prepare import prepare_dataset
from skinseg.weights import bundled_model_path

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ISIC_DIR.is_dir(), reason="real ISIC 2018 data not present (../shared)"),
]


@pytest.fixture(scope="module")
def prepared_isic(tmp_path_factory):
    out = tmp_path_factory.mktemp("isic") / "isic64"
    return prepare_dataset(PrepareConfig(data=ISIC_DIR, out=out, size=64))


def test_prepare_finds_every_pair_and_splits_them(prepared_isic):
    assert prepared_isic.layout == "isic2018"
    assert prepared_isic.count == 2594 and prepared_isic.skipped == []
    assert prepared_isic.split_sizes == {"train": 1561, "val": 519, "test": 514}


def test_bundled_model_segments_real_test_images_well(prepared_isic, tmp_path):
    if not bundled_model_path().is_file():
        pytest.skip("no bundled model in this checkout")
    import json

    from skinseg.evaluate import evaluate_model

    manifest = json.loads((prepared_isic.out_dir / "manifest.json").read_text())
    test_ids = [item for item in manifest["items"] if item["split"] == "test"][:40]
    subset = tmp_path / "subset"
    manifest["items"] = test_ids
    manifest["count"] = len(test_ids)
    subset.mkdir()
    (subset / "manifest.json").write_text(json.dumps(manifest))
    report = evaluate_model(EvaluateConfig(model=None, data=subset, device="cpu"))
    assert len(report.per_image) == 40
    assert report.summary["dice"]["mean"] > 0.8
