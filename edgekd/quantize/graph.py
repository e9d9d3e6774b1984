"""Capturing a model as a graph with a batch size that may vary, the form PT2E quantizes."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from edgekd.errors import EdgekdError, first_line
from edgekd.inputs import ModelInputs, call_arguments, concat, count

MAX_BATCH = 1 << 16


class CaptureError(EdgekdError):
    """A model that torch.export cannot capture."""


def batch_dynamic_shapes(example: ModelInputs) -> tuple | dict:
    """The batch dimension of every input free, as one shared dimension (all inputs share a batch)."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    if isinstance(example, Mapping):
        return {name: {0: batch} for name in example}
    return ({0: batch},)


def at_least_two(example: ModelInputs) -> ModelInputs:
    """A batch of 1 would be specialised away by torch.export: repeat it."""
    return concat([example, example]) if count(example) < 2 else example


def export_with_free_batch(module: nn.Module, example: ModelInputs) -> torch.export.ExportedProgram:
    """``torch.export`` called with the example as the model takes it (keyword inputs by name)."""
    example = at_least_two(example)
    args, kwargs = call_arguments(example)
    return torch.export.export(module, args, kwargs, dynamic_shapes=batch_dynamic_shapes(example))


def capture(model: nn.Module, example: ModelInputs) -> torch.export.ExportedProgram:
    """``torch.export`` with a dynamic batch dimension: QAT trains on batches of any size and the
    result still runs at batch 1. A model whose code fixes the batch size is named in the error."""
    try:
        return export_with_free_batch(model, example)
    except Exception as exc:  # noqa: BLE001 - torch.export raises many types; the user needs one line
        raise CaptureError(
            f"torch.export cannot capture {type(model).__name__} with a variable batch size: {first_line(exc)} "
            "(use x.shape[0] / -1 rather than a fixed batch size in reshapes)"
        ) from exc
