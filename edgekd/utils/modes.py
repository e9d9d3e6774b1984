"""Running a model for inference without disturbing its training state."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def inference(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no_grad for the block, then the model's own train/eval mode back, even on error.

    Measuring, probing or checking a model mid-training must not flip it to eval for good.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)
