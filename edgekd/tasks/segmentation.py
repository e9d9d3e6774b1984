"""Semantic segmentation: a class per pixel, logits of shape (batch, classes, height, width)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from edgekd.errors import DataError
from edgekd.tasks.classification import class_indices, kd_loss, soft_targets
from edgekd.tasks.scores import classes_found
from edgekd.tasks.task import Task, finite_targets
from edgekd.tasks.weights import ClassWeights, balanced_weights, checked_class_weights, weight_tensor

IGNORE_INDEX = 255  # the usual "void" label of segmentation datasets: not trained on, not scored


def per_pixel(output: torch.Tensor) -> torch.Tensor:
    """(batch, classes, H, W) logits as (batch*H*W, classes) rows."""
    return output.movedim(1, -1).reshape(-1, output.shape[1])


class Segmentation(Task):
    """Per-pixel classes (int masks of shape (batch, H, W), ``ignore_index`` pixels left out); the loss
    and the distillation are the classifier's per pixel, the best epoch the one with the highest mIoU."""

    name = "segmentation"
    metric_names = ("miou", "pixel_accuracy")
    default_monitor = "miou"
    parity_rule = "per-pixel class"

    def __init__(
        self, monitor: str | None = None, ignore_index: int = IGNORE_INDEX, class_weights: ClassWeights = None
    ) -> None:
        """``class_weights``: ``"balanced"`` (each class weighs its inverse pixel frequency in the training
        masks: the background that covers most pixels stops dominating the loss) or one weight per class."""
        super().__init__(monitor)
        self.ignore_index = ignore_index
        self.class_weights = checked_class_weights(class_weights)

    def fit(self, train_targets: np.ndarray) -> Segmentation:
        if self.class_weights != "balanced":
            return self
        fitted = copy.copy(self)
        fitted.class_weights = balanced_weights(train_targets, self.ignore_index)
        return fitted

    def targets(self, y: np.ndarray, key: str) -> np.ndarray:
        array = finite_targets(np.asarray(y), key)
        if array.ndim == 4 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 3:
            raise DataError(
                f"{key}: segmentation masks must be (samples, height, width) of class ids, got {array.shape}"
            )
        valid = array[array != self.ignore_index]
        class_indices(valid, key)  # the same one-line refusals as class labels (fractions, negatives)
        return array.astype(np.int64)

    def output_width(self, targets: Sequence[np.ndarray]) -> int:
        return int(max(int(t[t != self.ignore_index].max(initial=0)) for t in targets) + 1)

    def check_output(self, output: torch.Tensor, y: torch.Tensor, width: int, who: str) -> None:
        if output.dim() != 4 or output.shape[2:] != y.shape[1:]:
            raise DataError(
                f"{who} returns shape {tuple(output.shape)} for masks of shape {tuple(y.shape)}: a segmentation "
                "head must output (batch, classes, height, width) at the masks' resolution"
            )
        if output.shape[1] < width:
            raise DataError(f"{who} outputs {output.shape[1]} classes per pixel, but the masks hold {width}")

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        weight = weight_tensor(self.class_weights, output)
        return F.cross_entropy(output, y, weight=weight, ignore_index=self.ignore_index)

    def distill_loss(self, student, teachers, y, temperature, alpha, weights=None) -> torch.Tensor:
        targets = soft_targets([per_pixel(t) for t in teachers], temperature, weights)
        weight = weight_tensor(self.class_weights, student)
        return kd_loss(
            per_pixel(student), targets, y.reshape(-1), temperature, alpha, self.ignore_index, weight, weigh_soft=True
        )

    def batch_correct(self, output: torch.Tensor, y: torch.Tensor) -> float | None:
        return None  # pixels, not samples: the epoch line shows loss and validation mIoU

    def metrics(self, output: torch.Tensor, y: torch.Tensor, width: int) -> dict:
        if len(y) == 0:
            return {}
        predicted, truth = output.argmax(1).reshape(-1), y.reshape(-1)
        scored = truth != self.ignore_index
        predicted, truth = predicted[scored], truth[scored]
        classes = max(width, int(output.shape[1]))
        confusion = torch.bincount(truth * classes + predicted, minlength=classes * classes).reshape(classes, classes)
        hits = confusion.diag().double()
        union = confusion.sum(0).double() + confusion.sum(1).double() - hits
        present = union > 0
        iou = torch.where(present, hits / union.clamp_min(1), torch.zeros_like(hits))
        return {
            "miou": round(float(iou[present].mean()), 4) if present.any() else 0.0,
            "pixel_accuracy": round(float(hits.sum() / max(len(truth), 1)), 4),
            "per_class_iou": [round(float(v), 4) if p else None for v, p in zip(iou, present)],
        }

    def no_skill(self, metrics: dict, width: int) -> str | None:
        segmented = classes_found(metrics)
        if segmented is None or len(segmented[0]) < 2 or len(segmented[1]) > 1:
            return None
        return f"mIoU {metrics['miou']:.3f}: it finds no class but one per pixel"

    def decisions(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        rows = np.moveaxis(output, 1, -1).reshape(-1, output.shape[1])
        best_two = np.sort(rows, axis=-1)[:, -2:]
        return rows.argmax(-1), best_two[:, 1] - best_two[:, 0]

    def describe(self) -> dict:
        return {
            **super().describe(),
            "output": "logits (batch, classes, height, width): each pixel's class is the largest",
            "ignore_index": self.ignore_index,
            **({"class_weights": self.class_weights} if self.class_weights is not None else {}),
        }
