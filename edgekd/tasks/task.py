"""The task contract: what a model's outputs mean, named once and carried by every stage.

A task decides how targets are checked and stored, the training loss, the distillation loss, the metrics
a split is judged by (and which of them picks the best epoch, ``monitor``), how an exported file's outputs
are compared with PyTorch's, and what the manifest tells an app about the outputs. Every stage reads
it from the data (``DataBundle.task``), so a regression head is never trained as a one-class classifier
nor reported "100% accurate".

Writing one: subclass :class:`Task`, set ``name``, ``metric_names``, ``lower_is_better`` and
``default_monitor``, and give ``loss``, ``distill_loss`` and ``metrics``; register it with
:func:`edgekd.tasks.register_task` (or the entry-point group ``edgekd.tasks``) to name it in recipes.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from edgekd.errors import ConfigError, DataError
from edgekd.outputs import logits_of


class Task:
    """What a model's output means; the built-in ones are classification, multilabel, regression and
    segmentation (:func:`edgekd.tasks.get`)."""

    name: str = "task"
    metric_names: tuple[str, ...] = ()
    lower_is_better: frozenset[str] = frozenset()
    default_monitor: str = ""
    parity_rule: str = "values"  # what the parity gate's agreement counts (see decisions)
    structured: bool = False  # the model returns several outputs that the task reads together (detection)

    def __init__(self, monitor: str | None = None) -> None:
        self.monitor = self.checked_monitor(monitor)

    def monitoring(self, monitor: str) -> Task:
        """A copy of this task that picks the best epoch on ``monitor``."""
        twin = copy.copy(self)
        twin.monitor = self.checked_monitor(monitor)
        return twin

    def checked_monitor(self, monitor: str | None) -> str:
        """``monitor`` when the task has such a metric; one line listing those it has otherwise."""
        chosen = self.default_monitor if monitor is None else monitor
        if chosen not in self.metric_names:
            raise ConfigError(f"monitor: '{chosen}' is not a {self.name} metric; it has {', '.join(self.metric_names)}")
        return chosen

    def for_inputs(self, input_shape: Sequence[int]) -> Task:
        """The task for inputs of this per-sample shape (a detector's image size); itself by default."""
        return self

    # --- outputs -------------------------------------------------------------------------------------
    def output_of(self, raw: Any) -> torch.Tensor:
        """The one tensor per batch the loop trains and judges on: the logits of whatever the forward
        returns (:func:`edgekd.outputs.logits_of`); a structured task packs every output."""
        return logits_of(raw)

    # --- targets -------------------------------------------------------------------------------------
    def targets(self, y: np.ndarray, key: str) -> np.ndarray:
        """``y`` as this task stores it, or a DataError line naming ``key`` and what is wrong."""
        raise NotImplementedError

    def output_width(self, targets: Sequence[np.ndarray]) -> int:
        """How many values (classes, labels, targets) the model must output per sample or pixel."""
        raise NotImplementedError

    def check_output(self, output: torch.Tensor, y: torch.Tensor, width: int, who: str) -> None:
        """A DataError line when ``output`` cannot be judged against ``y`` (shape, width)."""

    # --- training ------------------------------------------------------------------------------------
    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def distill_loss(
        self,
        student: torch.Tensor,
        teachers: Sequence[torch.Tensor],
        y: torch.Tensor,
        temperature: float,
        alpha: float,
        weights: Sequence[float] | None = None,
    ) -> torch.Tensor:
        """``alpha`` x the label loss + (1 - ``alpha``) x agreement with the (weighted) teachers' outputs."""
        raise NotImplementedError

    def batch_correct(self, output: torch.Tensor, y: torch.Tensor) -> float | None:
        """Correct decisions in a training batch, for a running accuracy; None where there is none."""
        return None

    # --- judging -------------------------------------------------------------------------------------
    def metrics(self, output: torch.Tensor, y: torch.Tensor, width: int) -> dict:
        """Every metric of a split (``metric_names`` among them) from its stacked outputs and targets."""
        raise NotImplementedError

    def better(self, candidate: float, incumbent: float | None) -> bool:
        """Whether ``candidate`` beats ``incumbent`` on the monitored metric."""
        if incumbent is None or np.isnan(incumbent):
            return not np.isnan(candidate)
        if self.monitor in self.lower_is_better:
            return candidate < incumbent
        return candidate > incumbent

    def rank(self, value: float) -> float:
        """``value`` of the monitored metric as a number where higher is better (for max/sort)."""
        return -value if self.monitor in self.lower_is_better else value

    def fit(self, train_targets: np.ndarray) -> Task:
        """The task with whatever it learns from the training targets (class weights); itself by default."""
        return self

    def no_skill(self, metrics: dict, width: int) -> str | None:
        """Why a model with these metrics knows (next to) nothing, or None: a teacher that does teaches nothing."""
        return None

    def decisions(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Per decision unit (a sample, a pixel, a label), what the output decides and by what lead; the
        parity gate counts agreement on them. None for outputs that decide nothing (regression)."""
        return None

    def agreement(self, expected: Sequence[np.ndarray], actual: Sequence[np.ndarray]) -> tuple[float, int] | None:
        """For a structured task: the share of the model's decisions a file's outputs repeat, and over how
        many; None where the per-unit :meth:`decisions` judge instead."""
        return None

    def describe(self) -> dict:
        """What an app reads in the manifest about the outputs."""
        return {"task": self.name, "monitor": self.monitor}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(monitor={self.monitor!r})"


def weighted_mean(values: Sequence[torch.Tensor], weights: Sequence[float] | None) -> torch.Tensor:
    """The teachers' outputs averaged with ``weights`` (equal by default)."""
    weights = list(weights) if weights is not None else [1.0] * len(values)
    total = float(sum(weights))
    return torch.stack([w / total * v for w, v in zip(weights, values)]).sum(0)


def finite_targets(array: np.ndarray, key: str) -> np.ndarray:
    """Numeric targets without NaN/Inf, or one DataError line."""
    if array.dtype.kind not in "biuf":
        raise DataError(f"{key}: targets must be numbers, got {array.dtype} values")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise DataError(f"{key}: targets hold NaN or Inf")
    return array


def integral(array: np.ndarray) -> bool:
    """Whether every value is a whole number (int arrays, or floats like 3.0)."""
    return array.dtype.kind in "biu" or bool(np.all(array == np.round(array)))
