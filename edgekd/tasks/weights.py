"""Per-class weights of a label loss: for imbalanced classes (fraud, defects) and for the background pixels
that dominate a segmentation mask. ``"balanced"`` weighs each class by its inverse frequency in the
training targets, counted once when the data is known (``Task.fit``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from edgekd.errors import ConfigError

ClassWeights = str | Sequence[float] | None


def checked_class_weights(value: ClassWeights) -> str | list[float] | None:
    """``"balanced"``, a list of weights >= 0, or None; one ConfigError line otherwise."""
    if isinstance(value, str) and value != "balanced":
        raise ConfigError(f"class_weights: 'balanced' or one number per class, got '{value}'")
    if value is None or isinstance(value, str):
        return value
    values = list(value)
    if not values or not all(isinstance(v, (int, float)) and v >= 0 for v in values):
        raise ConfigError("class_weights: 'balanced' or one number >= 0 per class")
    return [float(v) for v in values]


def balanced_weights(targets: np.ndarray, ignore_index: int | None = None) -> list[float]:
    """Each class's inverse frequency among the targets (0 for a class they never hold), mean 1 over those present."""
    values = np.asarray(targets).reshape(-1).astype(np.int64)
    if ignore_index is not None:
        values = values[values != ignore_index]
    counts = np.bincount(values)
    present = counts > 0
    weights = np.where(present, counts.sum() / (present.sum() * np.maximum(counts, 1)), 0.0)
    return [round(float(w), 6) for w in weights]


def weight_tensor(weights: str | list[float] | None, logits: torch.Tensor) -> torch.Tensor | None:
    """The weights for a loss over ``logits`` (classes on axis 1), or a ConfigError line when they cannot be."""
    if weights is None:
        return None
    if isinstance(weights, str):
        raise ConfigError(
            "class_weights='balanced' needs the training labels; pass the task to the data "
            "(from_arrays(..., task=...)) or to the Pipeline, or give one weight per class"
        )
    if len(weights) != logits.shape[1]:
        raise ConfigError(f"class_weights: {len(weights)} weights for {logits.shape[1]} classes")
    return torch.tensor(weights, dtype=logits.dtype, device=logits.device)
