"""The registry of model architectures: train, weights, fine-tuning (`init`) and export build models only through it.

A new architecture is its module plus one `ARCHITECTURES.register(...)` line here; its file's metadata then
names it, and `load_model` rebuilds it from that name.
"""

from __future__ import annotations

from collections.abc import Callable

from skinseg.models.config import ModelConfig
from skinseg.models.improved_unet import ImprovedUNet
from skinseg.models.layers import SegmentationModel
from skinseg.models.unet import UNet
from skinseg.registry import Registry

ARCHITECTURES: Registry[Callable[[ModelConfig], SegmentationModel]] = Registry("architecture")
ARCHITECTURES.register("improved_unet")(ImprovedUNet)
ARCHITECTURES.register("unet")(UNet)


def create_model(config: ModelConfig) -> SegmentationModel:
    """The model `config` describes, with freshly initialised weights."""
    return ARCHITECTURES.get_checked(config.architecture)(config)
