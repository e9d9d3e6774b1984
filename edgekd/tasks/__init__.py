"""Tasks: what a model's outputs mean (see :mod:`edgekd.tasks.task` for the contract).

``get("regression")`` builds a named task, ``get(task_object)`` checks your own, and :func:`infer`
names the task a set of targets implies where that is unambiguous, refusing in one line where it is not.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgekd.catalog import catalog
from edgekd.errors import ConfigError, DataError
from edgekd.tasks.task import Task, integral

__all__ = ["Task", "get", "infer", "register_task", "task_names"]

TaskSpec = str | Task | None


def register_task(name: str) -> Callable[[type], type]:
    """Class decorator: recipes may name this Task subclass as ``task: name``."""
    return catalog("tasks").register(name)


def task_names() -> list[str]:
    return catalog("tasks").names()


def get(task: TaskSpec, monitor: str | None = None, **options) -> Task:
    """A Task from a name (``classification``, ``multilabel``, ``regression``, ``segmentation``,
    ``detection``) or your own Task object; ``monitor`` names the metric that picks the best epoch."""
    if isinstance(task, Task):
        return task if monitor is None else task.monitoring(monitor)
    if not isinstance(task, str):
        raise ConfigError(
            f"task: expected a name ({', '.join(task_names())}) or an edgekd.tasks.Task, got {type(task).__name__}"
        )
    found = catalog("tasks").get(task)
    try:
        return found(monitor=monitor, **options)
    except TypeError as exc:
        raise ConfigError(f"task '{task}': {exc}") from exc


def infer(y: np.ndarray, key: str = "y_train") -> str:
    """The task targets imply, or a DataError line when they fit several (name it with ``task=``)."""
    try:
        array = np.asarray(y)
    except ValueError:  # a ragged list: a different count per sample
        array = np.asarray(y, dtype=object)
    if array.dtype == object:
        raise DataError(
            f"{key}: targets of a different length per sample (boxes per image?): pass task='detection' for "
            "(class, x0, y0, x1, y1) rows per image, or your own edgekd.tasks.Task"
        )
    if array.dtype.kind not in "biuf":
        raise DataError(f"{key}: targets must be numbers, got {array.dtype} values")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise DataError(f"{key}: targets hold NaN or Inf")
    whole = integral(array)
    if array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1):
        if not whole:
            return "regression"
        if array.size and array.min() < 0:
            values = np.unique(array)
            shown = ", ".join(f"{v:g}" for v in values[:4]) + (", ..." if len(values) > 4 else "")
            raise DataError(
                f"{key}: whole-number targets with negatives ({shown}): class labels or values to regress? pass "
                "task='regression', or map classes to 0..C-1 (for {-1, +1}: (y + 1) // 2)"
            )
        return "classification"
    if array.ndim == 2:
        if np.isin(array, (0, 1)).all():
            raise DataError(
                f"{key}: shape {array.shape} of 0/1 values: several labels per sample or {array.shape[1]} values to "
                "regress? pass task='multilabel' or task='regression'"
            )
        return "regression"
    if array.ndim == 3 and array.shape[-1] == 5:
        raise DataError(
            f"{key}: shape {array.shape}, rows of 5: (class, x0, y0, x1, y1) boxes to detect or masks to segment? pass "
            "task='detection' or task='segmentation'"
        )
    if array.ndim in (3, 4) and whole:
        return "segmentation"
    raise DataError(
        f"{key}: targets of shape {array.shape} fit no built-in task; pass task= (one of {', '.join(task_names())}) "
        "or your own edgekd.tasks.Task"
    )
