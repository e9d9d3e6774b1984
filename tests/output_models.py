"""Models whose forwards return what users' models return: dicts, tuples, output objects (test helpers)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class OutputObject(OrderedDict):
    """The shape of a Hugging Face ModelOutput: a mapping whose keys are also attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class SmallConv(nn.Module):
    """conv-relu, pooling, linear; ``kind`` chooses what the forward returns."""

    def __init__(self, kind: str = "tensor", width: int = 8, classes: int = 4, channels: int = 1) -> None:
        super().__init__()
        self.kind = kind
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor):
        features = self.body(self.stem(x)).mean((-1, -2))
        logits = self.head(features)
        if self.kind == "dict":
            return {"logits": logits, "features": features}
        if self.kind == "object":
            return OutputObject(logits=logits, hidden_states=(features,))
        if self.kind == "tuple":
            return logits, features
        if self.kind == "features_first":
            return features, logits
        return logits


def features_first(**kwargs) -> nn.Module:
    """A factory for recipes: the logits are the second element of the output tuple."""
    return SmallConv("features_first", **kwargs)


def second(output):
    """A selector function for recipes."""
    return output[1]
