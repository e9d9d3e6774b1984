"""Regression: one or more real-valued targets per sample (a score, a risk, a box offset, a keypoint)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from edgekd.errors import ConfigError, DataError
from edgekd.tasks.task import Task, finite_targets, weighted_mean

LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.smooth_l1_loss}


class Regression(Task):
    """Real-valued outputs of shape (batch,) or (batch, targets). ``loss`` is ``mse``, ``l1`` or
    ``huber``; distillation pulls the student's outputs towards the teachers' with the same loss
    (a temperature means nothing here and is ignored)."""

    name = "regression"
    metric_names = ("rmse", "mae", "r2")
    lower_is_better = frozenset({"rmse", "mae"})
    default_monitor = "rmse"

    def __init__(self, monitor: str | None = None, loss: str = "mse") -> None:
        super().__init__(monitor)
        if loss not in LOSSES:
            raise ConfigError(f"loss: regression takes {', '.join(LOSSES)}, got '{loss}'")
        self.loss_name = loss

    def targets(self, y: np.ndarray, key: str) -> np.ndarray:
        array = finite_targets(np.asarray(y), key)
        if array.ndim == 0 or array.ndim > 2:
            raise DataError(f"{key}: regression targets must be (samples,) or (samples, targets), got {array.shape}")
        return array.astype(np.float32).reshape(len(array), -1)

    def output_width(self, targets: Sequence[np.ndarray]) -> int:
        return int(targets[0].shape[1]) if targets[0].ndim == 2 else 1

    def check_output(self, output: torch.Tensor, y: torch.Tensor, width: int, who: str) -> None:
        if output.reshape(len(output), -1).shape != y.reshape(len(y), -1).shape:
            raise DataError(
                f"{who} returns shape {tuple(output.shape)} for targets of shape {tuple(y.shape)}: a regression "
                f"head must output {width} value(s) per sample"
            )

    def _pair(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return LOSSES[self.loss_name](output.reshape(len(output), -1).float(), target.reshape(len(target), -1).float())

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._pair(output, y)

    def distill_loss(self, student, teachers, y, temperature, alpha, weights=None) -> torch.Tensor:
        teacher = weighted_mean([t.reshape(len(t), -1) for t in teachers], weights)
        return alpha * self._pair(student, y) + (1.0 - alpha) * self._pair(student, teacher)

    def metrics(self, output: torch.Tensor, y: torch.Tensor, width: int) -> dict:
        if len(y) == 0:
            return {}
        predicted = output.reshape(len(output), -1).double()
        truth = y.reshape(len(y), -1).double()
        error = predicted - truth
        spread = ((truth - truth.mean(0)) ** 2).sum(0)
        r2 = 1 - (error**2).sum(0) / spread.clamp_min(1e-12)
        return {
            "rmse": round(float(error.pow(2).mean().sqrt()), 6),
            "mae": round(float(error.abs().mean()), 6),
            "r2": round(float(r2.mean()), 6),  # averaged over the targets
            "target_std": round(float(truth.std()), 6) if len(truth) > 1 else 0.0,
        }

    def no_skill(self, metrics: dict, width: int) -> str | None:
        r2 = metrics.get("r2")
        if r2 is not None and r2 <= 0.0:
            return f"R^2 {r2:.3f}: no better than predicting the targets' mean"
        return None

    def describe(self) -> dict:
        return {
            **super().describe(),
            "output": "the predicted value(s), in the targets' own units",
            "loss": self.loss_name,
        }
