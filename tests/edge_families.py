"""Edge model families written in the tests: TF-style padded convs, MobileNetV3 blocks (SE + hardswish)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SamePadded(nn.Module):
    """TensorFlow-style "same" convolutions: an explicit F.pad in front of each unpadded conv."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 2), nn.BatchNorm2d(width), nn.ReLU6())
        self.depthwise = nn.Sequential(nn.Conv2d(width, width, 3, groups=width), nn.BatchNorm2d(width), nn.ReLU6())
        self.head = nn.Linear(width, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(F.pad(x, (0, 1, 0, 1)))
        x = self.depthwise(F.pad(x, (1, 1, 1, 1)))
        return self.head(x.mean((-1, -2)))


class SqueezeExcite(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.reduce, self.expand = nn.Conv2d(width, width // 4, 1), nn.Conv2d(width // 4, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.expand(F.relu(self.reduce(scale))))


class MobileNetV3Block(nn.Module):
    """A MobileNetV3-style net: hardswish, depthwise conv, squeeze-excite, residual add."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.Hardswish())
        self.depthwise = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, groups=width), nn.BatchNorm2d(width), nn.Hardswish()
        )
        self.se = SqueezeExcite(width)
        self.project = nn.Sequential(nn.Conv2d(width, width, 1), nn.BatchNorm2d(width))
        self.head = nn.Linear(width, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.project(self.se(self.depthwise(x)))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
