"""How good a model is on a loader: the number every stage's best epoch and every ledger row rests on."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import nn

from edgekd.errors import DataError, first_line
from edgekd.inputs import forward, split_batch, to_device
from edgekd.outputs import logits_of
from edgekd.tasks import Task
from edgekd.tasks.classification import NEAR_CHANCE, Classification
from edgekd.train import distributed
from edgekd.utils.modes import inference


def near_chance(accuracy: float, classes: int) -> bool:
    """Whether ``accuracy`` is no better than guessing among ``classes`` by more than ``NEAR_CHANCE``."""
    return classes > 1 and accuracy <= NEAR_CHANCE / classes


def evaluate(
    model: nn.Module,
    loader: Iterable,
    device: torch.device | str = "cpu",
    split: bool = False,
    task: Task | None = None,
    width: int | None = None,
) -> float:
    """The task's monitored metric of ``model`` over a loader of ``(x, y, ...)`` batches: top-1 accuracy
    for a classifier (the default), mIoU, RMSE... for other tasks. With ``split`` under ``torchrun`` each
    rank evaluates its share of the batches and the counts are summed (every rank must call it then);
    metrics that counts cannot sum are computed by every rank on the whole loader."""
    if task is not None and not (isinstance(task, Classification) and task.monitor == "accuracy"):
        return judge(model, loader, task, width, device)[task.monitor]
    correct = total = 0
    batches = distributed.evaluation_batches(loader) if split else loader
    for logits, y in _logits_and_labels(model, batches, device):
        correct += int((logits.argmax(1) == y).sum())
        total += len(y)
    if split:
        correct, total = distributed.sums(correct, total)
    return correct / max(total, 1)


def validation_score(
    model: nn.Module, data, device: torch.device | str = "cpu", loader: Iterable | None = None
) -> float:
    """The data's task's monitored metric of ``model`` on validation (or on ``loader``)."""
    return evaluate(model, data.val if loader is None else loader, device, task=data.task, width=data.num_classes)


def judge(
    model: nn.Module, loader: Iterable, task: Task, width: int | None = None, device: torch.device | str = "cpu"
) -> dict:
    """Every metric of ``task`` for ``model`` on a loader (``width``: classes or targets, else the output's)."""
    outputs, targets = logits_and_labels(model, loader, device, task)
    if width is None:
        width = int(outputs.shape[1]) if outputs.dim() > 1 else 1
    return task.metrics(outputs, targets, width)


def logits_and_labels(
    model: nn.Module, loader: Iterable, device: torch.device | str = "cpu", task: Task | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every logit row (``task``'s output rows: a detector's packed outputs) and label of a loader, on the
    CPU: what metrics beyond accuracy are computed from."""
    pairs = _logits_and_labels(model, loader, device, task)
    return stacked((logits.float().cpu(), y.cpu()) for logits, y in pairs)


def stacked(pairs: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-batch (logits, labels) as one tensor each; empty ones for a loader without batches."""
    pairs = list(pairs)
    if not pairs:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])


def top1(logits: torch.Tensor, labels: torch.Tensor, empty: float) -> float:
    """The share of rows whose largest logit is the label; ``empty`` when there are no rows."""
    return float((logits.argmax(-1) == labels).float().mean()) if len(labels) else empty


def _logits_and_labels(
    model: nn.Module, batches: Iterable, device: torch.device | str, task: Task | None = None
) -> Iterator:
    output_of = task.output_of if task is not None else logits_of
    with inference(model):
        for batch in batches:
            x, y, _ = split_batch(batch)
            x, y = to_device(x, device), y.to(device)
            try:
                logits = output_of(forward(model, x))
            except torch.OutOfMemoryError:
                raise
            except (RuntimeError, TypeError) as exc:  # the model and the loader do not fit: one line, not a trace
                raise DataError(f"{type(model).__name__} cannot take the loader's inputs: {first_line(exc)}") from exc
            yield logits, y
