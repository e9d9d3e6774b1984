"""A fresh copy of a model: same architecture, new random weights.

Mutual learning needs peers that start apart, born-again generations start from scratch: both copy
the student's architecture (whatever it is, pruned or not) rather than asking the user to build it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgekd.errors import ConfigError


def fresh_copy(model: nn.Module, seed: int) -> nn.Module:
    """``model`` deep-copied with every layer that can re-initialize itself drawn anew from ``seed``."""
    twin = copy.deepcopy(model)
    reset = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in twin.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
                reset += 1
    if reset == 0 and any(True for _ in twin.parameters()):
        raise ConfigError(f"{type(model).__name__}: no layer has reset_parameters(), so no fresh copy can be drawn")
    return twin
