"""A reference segmenter for the segmentation task: a small U-Net of plain Conv-BN-ReLU blocks.

Three stride-2 stages see a whole object (a receptive field past 28 px), nearest-neighbour upsampling
brings the map back, and each level's features are concatenated on the way up so edges stay sharp.
Every op exports to ONNX and TFLite and quantizes per channel. What the ``segment_digits`` study trains.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekd.models.registry import register


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyUNet(nn.Module):
    """Per-pixel logits (batch, classes, H, W) for inputs whose sides divide by 8."""

    def __init__(self, in_channels: int = 1, num_classes: int = 11, width: int = 16) -> None:
        super().__init__()
        w = width
        self.down1, self.down2 = _block(in_channels, w), _block(w, 2 * w, 2)
        self.down3, self.down4 = _block(2 * w, 4 * w, 2), nn.Sequential(_block(4 * w, 4 * w, 2), _block(4 * w, 4 * w))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.up3, self.up2, self.up1 = _block(8 * w, 2 * w), _block(4 * w, w), _block(2 * w, w)
        self.head = nn.Conv2d(w, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.down1(x)
        f2 = self.down2(f1)
        f3 = self.down3(f2)
        f4 = self.down4(f3)
        u3 = self.up3(torch.cat([self.up(f4), f3], 1))
        u2 = self.up2(torch.cat([self.up(u3), f2], 1))
        u1 = self.up1(torch.cat([self.up(u2), f1], 1))
        return self.head(u1)


@register("tiny-unet")
def tiny_unet(in_channels: int = 1, num_classes: int = 11, width: int = 16) -> nn.Module:
    return TinyUNet(in_channels, num_classes, width)
