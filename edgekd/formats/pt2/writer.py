"""The PyTorch reference a benchmark measures beside the exported files: the model as a ``.pt2``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgekd.inputs import ModelInputs
from edgekd.quantize.graph import FreeAxes, capture
from edgekd.utils.fileio import atomic_write
from edgekd.utils.modes import inference


def torch_reference(model: nn.Module, example: ModelInputs, path: Path, free: FreeAxes | None = None) -> Path:
    """``model`` as a ``torch.export`` archive at ``path`` (a QuantizedModel's own graph, else captured
    with the ``free`` axes); raises CaptureError when torch.export cannot take the model."""
    program = getattr(model, "program", None)
    if program is None:
        with inference(model):
            program = capture(model.cpu(), example, free)
    atomic_write(path, lambda handle: torch.export.save(program, handle))
    return path
