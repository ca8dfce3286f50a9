"""A plain UNet (Ronneberger et al. 2015) as a small baseline beside the improved UNet.

Per level two 3x3 conv-norm-act blocks; max-pooling down, nearest upsampling and a 3x3 conv up, skips
concatenated; one 1x1 head on the top level (no deep supervision, no residuals, no dropout). It exists to
compare against, and to show that a new architecture is one module plus one registry entry.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn

from skinseg.models.config import ModelConfig
from skinseg.models.layers import ActLayer, ConvNormAct, NormLayer, SegmentationModel, pad_to_multiple

plain_norm: NormLayer = partial(nn.InstanceNorm2d, affine=True)
plain_act: ActLayer = partial(nn.ReLU, inplace=True)


class DoubleConv(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, **layers):
        super().__init__(ConvNormAct(in_ch, out_ch, 3, **layers), ConvNormAct(out_ch, out_ch, 3, **layers))


class UNet(SegmentationModel):
    """Plain UNet returning logits; any input height and width (padded internally, cropped back)."""

    def __init__(
        self, config: ModelConfig | None = None, *, norm_layer: NormLayer = plain_norm, act_layer: ActLayer = plain_act
    ):
        super().__init__()
        self.config = config = config or ModelConfig(architecture="unet")
        layers: dict[str, Any] = dict(norm_layer=norm_layer, act_layer=act_layer)
        widths = [config.base_filters * 2**i for i in range(config.depth)]
        self.encoder = nn.ModuleList(
            DoubleConv(config.in_channels if i == 0 else widths[i - 1], widths[i], **layers)
            for i in range(config.depth)
        )
        self.pool = nn.MaxPool2d(2)
        self.upsamples = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"), ConvNormAct(widths[i], widths[i - 1], 3, **layers)
            )
            for i in range(config.depth - 1, 0, -1)
        )
        self.decoder = nn.ModuleList(
            DoubleConv(2 * widths[i - 1], widths[i - 1], **layers) for i in range(config.depth - 1, 0, -1)
        )
        self.head = nn.Conv2d(widths[0], config.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, self.size_multiple)
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x if level == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, block in zip(self.upsamples, self.decoder, strict=False):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)[..., :height, :width]
