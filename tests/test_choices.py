"""Choices are read from their registries, and segment's file-name suffixes from one place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from skinseg.cli import app
from skinseg.data.layouts import LAYOUTS, Layout
from skinseg.errors import SkinsegError
from skinseg.inputs import CROP, EXTRA_OUTPUTS, NOT_INPUT_ENDINGS, OVERLAY, PROBABILITY, picture_path
from skinseg.registry import Registry, spoken


def test_choices_are_spoken_with_the_default_first():
    registry: Registry[int] = Registry("loss")
    for name in ("dice", "bce", "dice_bce"):
        registry.register(name)(0)
    assert registry.choices("dice_bce") == "dice_bce, dice or bce"
    assert spoken(["a"]) == "a" and spoken(["a", "b"]) == "a or b"


def test_prepare_help_and_its_error_list_every_registered_layout(monkeypatch):
    monkeypatch.setitem(LAYOUTS, "derm7pt", Layout("derm7pt", "images", "masks", "_mask"))
    runner = CliRunner()
    shown = " ".join(runner.invoke(app, ["prepare", "--help"], terminal_width=200).output.split())
    assert "auto, isic2018, isic2017, isic2016, ham10000, ph2, generic or derm7pt." in shown
    with pytest.raises(SkinsegError, match=r"choose one of auto, isic2018, .*, generic, derm7pt$"):
        LAYOUTS.check("isic2020")


def test_each_picture_suffix_is_written_recognised_and_named_from_one_definition():
    for suffix in (OVERLAY, PROBABILITY, CROP):
        written = picture_path(Path("out"), Path("in/ISIC_1.jpg"), suffix)
        assert written == Path(f"out/ISIC_1{suffix}.png")
        assert EXTRA_OUTPUTS.search(written.stem)
        assert suffix in NOT_INPUT_ENDINGS


def test_train_help_lists_a_newly_registered_loss_and_architecture(monkeypatch):
    from skinseg.models.architectures import ARCHITECTURES
    from skinseg.training.config import choices_text
    from skinseg.training.losses import LOSSES

    monkeypatch.setitem(LOSSES, "focal", lambda logits, target: logits)
    assert choices_text("loss") == "dice_bce, dice, bce or focal"
    monkeypatch.setitem(ARCHITECTURES, "segformer", object)
    assert choices_text("architecture") == "improved_unet, unet (a plain UNet baseline) or segformer"


@pytest.mark.parametrize(
    "settings,words",
    [
        ({"threshold": 1.5}, "`threshold` must be between 0 and 1, got 1.5"),
        ({"device": "gpu"}, "unknown device 'gpu'; choose one of auto, cpu, cuda, mps (or cuda:N)"),
        ({"device": "cuda:x"}, "unknown device 'cuda:x'"),
        ({"backend": "tf"}, "unknown backend 'tf'; choose one of torch, onnx"),
        ({"precision": "fp16"}, "unknown precision 'fp16'; choose one of auto, fp32, bf16"),
        ({"batch_size": 2.5}, "`batch_size` must be a whole number, got 2.5"),
    ],
)
def test_a_model_run_checks_its_settings_when_it_is_made(settings, words):
    """A Python trial: these were accepted, then refused when the model loaded (2.5 with a TypeError from torch)."""
    from skinseg.errors import ConfigError
    from skinseg.inference.model_run import ModelRun

    with pytest.raises(ConfigError, match=re.escape(words)):
        ModelRun(**settings)
    assert ModelRun(device="CUDA:1", precision="BF16").device == "CUDA:1"  # named as torch names them, any case


def test_a_model_run_takes_a_torch_device_and_a_numpy_integer():
    """A review: both worked before the settings were checked when made (a Segmenter takes a torch.device)."""
    import numpy as np
    import torch

    from skinseg.inference.model_run import ModelRun

    assert ModelRun(device=torch.device("cpu"), batch_size=np.int64(4)).batch_size == 4


def test_adapt_checks_its_device_and_precision_when_it_is_made():
    from skinseg.adaptation import AdaptConfig
    from skinseg.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        AdaptConfig(data=Path("d"), out=Path("o.safetensors"), device="gpu")
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        AdaptConfig(data=Path("d"), out=Path("o.safetensors"), precision="fp16")
