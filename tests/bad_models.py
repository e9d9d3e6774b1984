"""Models that are wrong on purpose, named from recipes as ``bad_models:<factory>`` in the tests."""

from __future__ import annotations

import torch
from torch import nn


class Digamma(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.digamma(x.abs() + 1)


def digamma_net(in_features: int = 64, num_classes: int = 10) -> nn.Module:
    """A student with an op no converter supports, in a module called 'odd'."""
    model = nn.Sequential()
    model.add_module("flat", nn.Flatten())
    model.add_module("fc", nn.Linear(in_features, 16))
    model.add_module("odd", Digamma())
    model.add_module("head", nn.Linear(16, num_classes))
    return model
