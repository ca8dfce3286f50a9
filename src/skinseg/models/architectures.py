"""The registry of model architectures: train, weights, fine-tuning (`init`) and export build models only through it.

A new architecture is its module plus one `ARCHITECTURES.register_lazy(...)` line here; its file's metadata then
names it, and `load_model` rebuilds it from that name. Its module (and torch) is imported when it is first built,
so the help of `train` lists the names without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from skinseg.registry import Registry

if TYPE_CHECKING:
    from skinseg.models.config import ModelConfig
    from skinseg.models.layers import SegmentationModel

ARCHITECTURES: Registry[Callable[[ModelConfig], SegmentationModel]] = Registry("architecture")
ARCHITECTURES.register_lazy("improved_unet", "skinseg.models.improved_unet:ImprovedUNet")
ARCHITECTURES.register_lazy("unet", "skinseg.models.unet:UNet", about="a plain UNet baseline")


def create_model(config: ModelConfig) -> SegmentationModel:
    """The model `config` describes, with freshly initialised weights."""
    return ARCHITECTURES.get_checked(config.architecture)(config)
