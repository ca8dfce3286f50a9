"""What every architecture builds on: conv-norm-act blocks that take `norm_layer`/`act_layer`, the
SegmentationModel base class of the registry's models, and padding to the encoder's stride."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from skinseg.models.config import ModelConfig

NormLayer = Callable[[int], nn.Module]
ActLayer = Callable[[], nn.Module]

default_norm: NormLayer = partial(nn.InstanceNorm2d, affine=True)
default_act: ActLayer = partial(nn.LeakyReLU, negative_slope=1e-2, inplace=True)


class ConvNormAct(nn.Sequential):
    """kxk convolution, instance norm, LeakyReLU."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        norm_layer: NormLayer = default_norm,
        act_layer: ActLayer = default_act,
    ):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2),
            norm_layer(out_ch),
            act_layer(),
        )


class SegmentationModel(nn.Module):
    """What every architecture of the registry offers: `config`, logits from `forward`, `predict`."""

    config: ModelConfig

    @property
    def size_multiple(self) -> int:
        return 2 ** (self.config.depth - 1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Lesion probabilities in [0, 1]; puts the model in eval mode first (no dropout, no batch statistics)."""
        self.eval()
        return torch.sigmoid(self(x))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad the bottom and right to a multiple of `multiple`, and to at least 2 pixels at the
    bottleneck (instance norm needs them). torch.sym_max and no branch on the amounts keep this traceable
    with dynamic sizes (ONNX export)."""
    height, width = x.shape[-2:]
    pad_h = torch.sym_max((-height) % multiple, 2 * multiple - height)
    pad_w = torch.sym_max((-width) % multiple, 2 * multiple - width)
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
