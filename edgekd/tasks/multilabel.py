"""Multi-label: any number of labels per sample (tags, attributes), one logit per label."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from edgekd.errors import DataError
from edgekd.tasks.task import Task, finite_targets, weighted_mean


class Multilabel(Task):
    """Targets of 0/1 per label, shape (batch, labels); a label is on where its logit is above 0
    (probability 0.5). Distillation matches each label's softened probability to the teachers'."""

    name = "multilabel"
    metric_names = ("map", "macro_f1", "micro_f1", "exact_match")
    default_monitor = "map"
    parity_rule = "per-label"

    def targets(self, y: np.ndarray, key: str) -> np.ndarray:
        array = finite_targets(np.asarray(y), key)
        if array.ndim != 2:
            raise DataError(f"{key}: multi-label targets must be (samples, labels) of 0/1, got shape {array.shape}")
        if not np.isin(array, (0, 1)).all():
            raise DataError(f"{key}: multi-label targets must be 0 or 1, got {array[~np.isin(array, (0, 1))][0]:g}")
        return array.astype(np.float32)

    def output_width(self, targets: Sequence[np.ndarray]) -> int:
        return int(targets[0].shape[1])

    def check_output(self, output: torch.Tensor, y: torch.Tensor, width: int, who: str) -> None:
        if output.shape != y.shape:
            raise DataError(
                f"{who} returns shape {tuple(output.shape)} for targets of shape {tuple(y.shape)}: a multi-label "
                f"head must output one logit per label ({width})"
            )

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(output, y.float())

    def distill_loss(self, student, teachers, y, temperature, alpha, weights=None) -> torch.Tensor:
        soft = weighted_mean([torch.sigmoid(t / temperature) for t in teachers], weights)
        agreement = F.binary_cross_entropy_with_logits(student / temperature, soft)
        return alpha * self.loss(student, y) + (1.0 - alpha) * temperature**2 * agreement

    def batch_correct(self, output: torch.Tensor, y: torch.Tensor) -> float:
        return float(((output.detach() > 0) == (y > 0.5)).all(1).sum())

    def metrics(self, output: torch.Tensor, y: torch.Tensor, width: int) -> dict:
        from sklearn.metrics import average_precision_score, f1_score

        if len(y) == 0:
            return {}
        truth, scores = y.numpy() > 0.5, output.float().numpy()
        predicted = scores > 0
        present = [j for j in range(truth.shape[1]) if truth[:, j].any()]
        precision = [average_precision_score(truth[:, j], scores[:, j]) for j in present]
        per_label = f1_score(truth, predicted, average=None, zero_division=0)
        return {
            "map": round(float(np.mean(precision)), 4) if precision else 0.0,
            "macro_f1": round(float(f1_score(truth, predicted, average="macro", zero_division=0)), 4),
            "micro_f1": round(float(f1_score(truth, predicted, average="micro", zero_division=0)), 4),
            "exact_match": round(float((predicted == truth).all(1).mean()), 4),
            "per_label_f1": [round(float(v), 4) for v in per_label],
            "labels_present": present,
        }

    def decisions(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        flat = output.reshape(-1)
        return flat > 0, 2 * np.abs(flat)  # a logit moved by e flips where |logit| < e: the lead is 2|logit|

    def describe(self) -> dict:
        return {
            **super().describe(),
            "output": "one logit per label (batch, labels): a label is on where its logit > 0",
        }
