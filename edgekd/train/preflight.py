"""Checks that fail in seconds, before minutes of training: every model takes the data's inputs and
returns its classes' logits."""

from __future__ import annotations

import torch
from torch import nn

from edgekd.data.sources import DataBundle
from edgekd.errors import DataError, first_line
from edgekd.inputs import ModelInputs, forward, to_device
from edgekd.outputs import OutputError, logits_of, output_selection, raw_output, several_outputs
from edgekd.utils.modes import inference

OUTPUT_HINT = "; if the logits are elsewhere in the output, select them with output= (name, index or function)"


def check_models_accept_data(
    models: list[tuple[str, nn.Module]], data: DataBundle, example: ModelInputs, device: torch.device
) -> None:
    """DataError naming the role (``teacher``, ``student``) of the first model that cannot take the data."""
    sample = to_device(example, device)
    for role, model in models:
        try:
            with inference(model.to(device)):
                out = logits_of(forward(model, sample))
        except OutputError as exc:
            raise DataError(f"{role} ({type(model).__name__}): {exc}") from exc
        except (RuntimeError, ValueError, TypeError) as exc:
            raise DataError(
                f"{role} ({type(model).__name__}) cannot take inputs {data.signature.text()} "
                f"from data '{data.name}': {first_line(exc)}"
            ) from exc
        if out.dim() != 2 or out.shape[1] != data.num_classes:
            hint = "" if output_selection(model) not in (None, "auto") else OUTPUT_HINT
            raise DataError(
                f"{role} ({type(model).__name__}) outputs {tuple(out.shape)} but data '{data.name}' has "
                f"{data.num_classes} classes; expected (batch, {data.num_classes}) logits{hint}"
            )


def unshipped_outputs(student: nn.Module, example: ModelInputs, device: torch.device) -> str | None:
    """A note when the student's forward returns several tensors and the default rule picks the logits:
    only those are trained against, compared and written to the files, and the run says so."""
    if output_selection(student) not in (None, "auto"):
        return None  # the user named the output: the choice is theirs and on record
    with inference(student.to(device)):
        output = raw_output(student, lambda: forward(student, to_device(example, device)))
    several = several_outputs(output)
    if several is None:
        return None
    return (
        f"the student returns several tensors ({several}); training, the parity gate and the files use the "
        "logits the default rule picks, and the files hold only those (name them with output= if they are elsewhere)"
    )
