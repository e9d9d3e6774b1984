"""Capturing a model as a graph with a batch size that may vary, the form PT2E quantizes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from edgekd.errors import EdgekdError, first_line
from edgekd.inputs import POSITIONAL_NAME, ModelInputs, call_arguments, concat, count, free_axis_name

FreeAxes = Mapping[str, Sequence[int]]  # input name -> per-sample axes (0 = first after the batch) that vary

MAX_BATCH = 1 << 16


class CaptureError(EdgekdError):
    """A model that torch.export cannot capture."""


def module_path(node) -> str:
    """The dotted name of the module a captured graph node was traced in ("" for the model itself), as
    ``named_modules()`` and ``exclude`` spell it."""
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0].removeprefix("L['self'].") if stack else ""


def batch_dynamic_shapes(example: ModelInputs, free: FreeAxes | None = None) -> tuple | dict:
    """The batch dimension of every input free, as one shared dimension (all inputs share a batch), and
    the ``free`` per-sample axes, one shared dimension per axis position (``input_ids`` and
    ``attention_mask`` share their sequence length), from 1 up to the example's size."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    named = example if isinstance(example, Mapping) else {POSITIONAL_NAME: example}
    shared: dict[int, torch.export.Dim] = {}
    shapes = {}
    for name, tensor in named.items():
        dims = {0: batch}
        for axis in (free or {}).get(name, ()):
            size = int(tensor.shape[axis + 1])
            shared.setdefault(axis, torch.export.Dim(free_axis_name(axis), min=1, max=max(size, 2)))
            dims[axis + 1] = shared[axis]
        shapes[name] = dims
    return shapes if isinstance(example, Mapping) else (shapes[POSITIONAL_NAME],)


def at_least_two(example: ModelInputs) -> ModelInputs:
    """A batch of 1 would be specialised away by torch.export: repeat it."""
    return concat([example, example]) if count(example) < 2 else example


def export_with_free_batch(
    module: nn.Module, example: ModelInputs, free: FreeAxes | None = None
) -> torch.export.ExportedProgram:
    """``torch.export`` called with the example as the model takes it (keyword inputs by name)."""
    example = at_least_two(example)
    args, kwargs = call_arguments(example)
    return torch.export.export(module, args, kwargs, dynamic_shapes=batch_dynamic_shapes(example, free))


def capture(model: nn.Module, example: ModelInputs, free: FreeAxes | None = None) -> torch.export.ExportedProgram:
    """``torch.export`` with a dynamic batch dimension (and the ``free`` axes): QAT trains on batches of
    any size and the result still runs at batch 1. A model whose code fixes a size is named in the error."""
    try:
        return export_with_free_batch(model, example, free)
    except Exception as exc:  # noqa: BLE001 - torch.export raises many types; the user needs one line
        what = "a variable batch size" + (" and sequence length" if free else "")
        raise CaptureError(
            f"torch.export cannot capture {type(model).__name__} with {what}: {first_line(exc)} "
            "(use x.shape[0] / -1 rather than a fixed size in reshapes)"
        ) from exc
