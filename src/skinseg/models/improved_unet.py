"""The improved UNet of Isensee et al. (2017, arXiv:1802.10508), in 2D.

Encoder: one context module per level (a pre-activation residual block), levels joined by stride-2
3x3 convolutions. Decoder: upsampling modules, concatenated skips, localization modules, and
segmentation heads at three levels that are upscaled and summed (deep supervision).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from skinseg.models.config import ModelConfig
from skinseg.models.layers import (
    ActLayer,
    ConvNormAct,
    NormLayer,
    SegmentationModel,
    default_act,
    default_norm,
    pad_to_multiple,
)


class ContextModule(nn.Module):
    """Pre-activation residual block: norm, act, 3x3 conv, dropout, norm, act, 3x3 conv, plus input."""

    def __init__(
        self,
        channels: int,
        dropout: float = 0.3,
        norm_layer: NormLayer = default_norm,
        act_layer: ActLayer = default_act,
    ):
        super().__init__()
        self.block = nn.Sequential(
            norm_layer(channels),
            act_layer(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.Dropout2d(dropout),
            norm_layer(channels),
            act_layer(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class UpsamplingModule(nn.Sequential):
    """Nearest-neighbour upsampling x2, then a 3x3 conv that halves the feature maps."""

    def __init__(self, in_ch: int, out_ch: int, **layers):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvNormAct(in_ch, out_ch, 3, **layers))


class LocalizationModule(nn.Sequential):
    """3x3 conv on the concatenated features, then a 1x1 conv that halves them."""

    def __init__(self, in_ch: int, out_ch: int, **layers):
        super().__init__(ConvNormAct(in_ch, in_ch, 3, **layers), ConvNormAct(in_ch, out_ch, 1, **layers))


class ImprovedUNet(SegmentationModel):
    """Improved UNet returning logits; any input height and width (padded internally, cropped back)."""

    def __init__(
        self,
        config: ModelConfig | None = None,
        *,
        norm_layer: NormLayer = default_norm,
        act_layer: ActLayer = default_act,
    ):
        super().__init__()
        self.config = config = config or ModelConfig()
        layers: dict[str, Any] = dict(norm_layer=norm_layer, act_layer=act_layer)
        widths = [config.base_filters * 2**i for i in range(config.depth)]

        self.stem = nn.Conv2d(config.in_channels, widths[0], 3, padding=1)
        self.downsamples = nn.ModuleList(
            ConvNormAct(widths[i - 1], widths[i], 3, stride=2, **layers) for i in range(1, config.depth)
        )
        self.context = nn.ModuleList(ContextModule(w, config.dropout, **layers) for w in widths)

        # Decoder, deepest first: upsample widths[i] -> widths[i-1], concat skip, localize.
        self.upsamples = nn.ModuleList(
            UpsamplingModule(widths[i], widths[i - 1], **layers) for i in range(config.depth - 1, 0, -1)
        )
        self.localization = nn.ModuleList(
            LocalizationModule(2 * widths[i - 1], widths[i - 1], **layers) for i in range(config.depth - 1, 1, -1)
        )
        # The top level has no halving 1x1 conv: the paper ends with a 3x3 conv of 2*base filters.
        self.top = ConvNormAct(2 * widths[0], 2 * widths[0], 3, **layers)

        head_widths = [widths[i] for i in range(config.segmentation_levels - 1, 0, -1)] + [2 * widths[0]]
        self.segmentation_heads = nn.ModuleList(nn.Conv2d(w, config.out_channels, 1) for w in head_widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, self.size_multiple)

        skips = []
        x = self.context[0](self.stem(x))
        skips.append(x)
        for down, context in zip(self.downsamples, self.context[1:], strict=False):
            x = context(down(x))
            skips.append(x)

        levels = self.config.depth
        decoder_outputs = []
        for step, up in enumerate(self.upsamples):
            x = torch.cat([up(x), skips[levels - 2 - step]], dim=1)
            x = self.localization[step](x) if step < len(self.localization) else self.top(x)
            decoder_outputs.append(x)

        # Deep supervision: heads at the last `segmentation_levels` decoder outputs, upscaled and summed.
        wanted = decoder_outputs[-self.config.segmentation_levels :]
        logits = None
        for head, features in zip(self.segmentation_heads, wanted, strict=False):
            seg = head(features)
            logits = seg if logits is None else F.interpolate(logits, scale_factor=2, mode="nearest") + seg
        assert logits is not None  # segmentation_levels >= 1
        return logits[..., :height, :width]
