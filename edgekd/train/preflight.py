"""Checks that fail in seconds, before minutes of training: every model takes the data's inputs and
returns what the task needs (a classifier's logits, a regression head's values, per-pixel logits...)."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from edgekd.data.sources import DataBundle, first_samples
from edgekd.errors import DataError, first_line
from edgekd.inputs import ModelInputs, forward, to_device
from edgekd.outputs import OutputError, output_selection, raw_output, several_outputs
from edgekd.tasks import TaskSpec
from edgekd.tasks import get as get_task
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
                out = data.task.output_of(forward(model, sample))
        except OutputError as exc:
            raise DataError(f"{role} ({type(model).__name__}): {exc}") from exc
        except (RuntimeError, ValueError, TypeError) as exc:
            raise DataError(
                f"{role} ({type(model).__name__}) cannot take inputs {data.signature.text()} "
                f"from data '{data.name}': {first_line(exc)}"
            ) from exc
        if data.task.name != "classification":
            _, targets = first_samples(data.val, len(out))
            data.task.check_output(out.cpu(), targets[: len(out)], data.num_classes, f"{role} ({type(model).__name__})")
            continue
        if out.dim() != 2 or out.shape[1] != data.num_classes:
            hint = "" if output_selection(model) not in (None, "auto") else OUTPUT_HINT
            raise DataError(
                f"{role} ({type(model).__name__}) outputs {tuple(out.shape)} but data '{data.name}' has "
                f"{data.num_classes} classes; expected (batch, {data.num_classes}) logits{hint}"
            )


def with_task(data: DataBundle, task: TaskSpec, monitor: str | None) -> DataBundle:
    """``data`` carrying the named task (and monitor), once its targets are checked to fit that task."""
    if task is None and monitor is None:
        return data
    chosen = get_task(task if task is not None else data.task, monitor)
    if chosen.name != data.task.name:
        _, targets = first_samples(data.val, 8)
        chosen.targets(targets.numpy(), f"task {chosen.name}: data '{data.name}' targets")
    labels = getattr(data.train, "y", None)  # in-memory training targets: what class weights are counted on
    if isinstance(labels, torch.Tensor):
        chosen = chosen.fit(labels.numpy())
    return dataclasses.replace(data, task=chosen)


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
