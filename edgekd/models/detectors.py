"""A reference anchor-free detector for the detection task's built-in head (:mod:`edgekd.tasks.detection`).

CenterNet style: a stride-4 feature map of plain Conv-BN-ReLU blocks (every op exports to ONNX and TFLite
and quantizes per channel), then two 1x1 heads: class heatmap logits and per-cell box distances. What the
``detect_digits`` study trains, and a starting point for a small detector of your own.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgekd.models.registry import register

PRIOR = 0.1  # the heatmap starts at this score everywhere: objects are rare, so training starts calm


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CenterNet(nn.Module):
    """Class heatmaps (batch, classes, H/4, W/4) and boxes (batch, 4, H/4, W/4), returned by name."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16, depth: int = 2) -> None:
        super().__init__()
        w = width
        layers = [_block(in_channels, w), _block(w, 2 * w, 2), _block(2 * w, 2 * w), _block(2 * w, 4 * w, 2)]
        layers += [_block(4 * w, 4 * w) for _ in range(depth)]
        self.features = nn.Sequential(*layers)
        self.heatmap = nn.Conv2d(4 * w, num_classes, 1)
        self.boxes = nn.Conv2d(4 * w, 4, 1)
        nn.init.constant_(self.heatmap.bias, -math.log((1 - PRIOR) / PRIOR))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.features(x)
        return {"heatmap": self.heatmap(features), "boxes": self.boxes(features)}


@register("centernet")
def centernet(in_channels: int = 1, num_classes: int = 10, width: int = 16, depth: int = 2) -> nn.Module:
    return CenterNet(in_channels, num_classes, width, depth)
