"""Capturing a model as a graph with a batch size that may vary, the form PT2E quantizes."""

from __future__ import annotations

import torch
from torch import nn

from edgekd.errors import EdgekdError, first_line

MAX_BATCH = 1 << 16


class CaptureError(EdgekdError):
    """A model that torch.export cannot capture."""


def batch_dynamic_shapes(example: torch.Tensor) -> tuple[dict[int, torch.export.Dim]]:
    return ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)


def capture(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``torch.export`` with a dynamic batch dimension: QAT trains on batches of any size and the
    result still runs at batch 1. A model whose code fixes the batch size is named in the error."""
    if example.shape[0] < 2:
        example = torch.cat([example, example])  # batch 1 would be specialised away
    try:
        return torch.export.export(model, (example,), dynamic_shapes=batch_dynamic_shapes(example))
    except Exception as exc:  # noqa: BLE001 - torch.export raises many types; the user needs one line
        raise CaptureError(
            f"torch.export cannot capture {type(model).__name__} with a variable batch size: {first_line(exc)} "
            "(use x.shape[0] / -1 rather than a fixed batch size in reshapes)"
        ) from exc
