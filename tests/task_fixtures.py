"""Small data and models for the tasks beyond one-label classification, made on the spot."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import edgekd as ek


def tabular_regression(n: int = 600, features: int = 8, seed: int = 0) -> ek.data.DataBundle:
    """A smooth score in [0, 1] of standardized features: what a risk or quality head predicts."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = 1 / (1 + np.exp(-(x[:, 0] - 0.5 * x[:, 1] + 0.25 * x[:, 2] * x[:, 3])))
    cut = n * 3 // 4
    return ek.data.from_arrays(x[:cut], y[:cut], x[cut:], y[cut:], batch_size=64, name="score")


def tabular_multilabel(n: int = 600, features: int = 8, seed: int = 0) -> ek.data.DataBundle:
    """Three tags per sample, each on where a different feature combination is positive."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0.5, x[:, 3] * x[:, 4] > 0], axis=1).astype(np.float32)
    cut = n * 3 // 4
    return ek.data.from_arrays(x[:cut], y[:cut], x[cut:], y[cut:], batch_size=64, name="tags", task="multilabel")


def blob_masks(n: int = 240, size: int = 16, seed: int = 0) -> ek.data.DataBundle:
    """Images holding a bright square (class 1) and a dim one (class 2) on a dark ground (class 0), with
    their per-pixel masks."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0.0, 0.05, size=(n, 1, size, size)).astype(np.float32)
    masks = np.zeros((n, size, size), np.int64)
    for i in range(n):
        for cls, level in ((1, 1.0), (2, 0.5)):
            side = rng.integers(3, 7)
            top, left = rng.integers(0, size - side, size=2)
            images[i, 0, top : top + side, left : left + side] = level
            masks[i, top : top + side, left : left + side] = cls
    cut = n * 3 // 4
    return ek.data.from_arrays(images[:cut], masks[:cut], images[cut:], masks[cut:], batch_size=32, name="blobs")


def mlp(features: int, outputs: int, hidden: int = 32) -> nn.Module:
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, outputs))  # fmt: skip


class TinySegmenter(nn.Module):
    """Per-pixel logits at the input's resolution: conv features, a 1x1 classifier."""

    def __init__(self, classes: int = 3, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
