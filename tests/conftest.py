from __future__ import annotations

from pathlib import Path

import pytest

from skinseg.config import ModelConfig, PrepareConfig, TrainConfig
from skinseg.data.prepare import prepare_dataset
from skinseg.data.synthetic import write_synthetic_dataset

REPO = Path(__file__).resolve().parents[1]
ISIC_DIR = REPO.parent / "shared" / "data" / "isic2018"
TINY = dict(model=ModelConfig(base_filters=4, depth=3), batch_size=8)


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory) -> Path:
    """30 synthetic 48x48 pairs in images/ + masks/ (masks named <id>_segmentation.png)."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("raw"), count=30, size=48, seed=1)


@pytest.fixture(scope="session")
def prepared_dir(raw_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "cache"
    prepare_dataset(PrepareConfig(data=raw_dir, out=out, size=48, workers=1))
    return out


@pytest.fixture(scope="session")
def trained_run(prepared_dir, tmp_path_factory):
    """A tiny model trained for 4 epochs on the synthetic set."""
    from skinseg.train import train

    out = tmp_path_factory.mktemp("run")
    result = train(TrainConfig(data=prepared_dir, out=out, epochs=4, device="cpu", lr=5e-3, **TINY))
    return result


@pytest.fixture(scope="session")
def tiny_model_path(trained_run) -> Path:
    return trained_run.run_dir / "best.safetensors"
