"""A teacher that is a Python function: a service's client, or any code that returns outputs for a batch."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

import numpy as np
import torch

from edgekd.distill.queried import QueriedTeacher
from edgekd.errors import ConfigError
from edgekd.inputs import count

TAKES = ("numpy", "torch")


class FunctionTeacher(QueriedTeacher):
    """Distill from ``fn(batch) -> outputs``: asked once per sample, its answers kept and counted.

    Args:
        fn: takes one batch (an array, or a dict of named arrays for named inputs) and returns the
            outputs for its rows: an array or tensor of shape (batch, ...), or a tuple / list / dict of them
            (the first is the logits). Also ``"package.module:function"``.
        takes: ``numpy`` (default: what a service client sends) or ``torch`` tensors on the CPU.
        Other options as :class:`~edgekd.distill.queried.QueriedTeacher` (``max_queries``, ``per_second``,
        ``gives``).
    """

    kind = "function"

    def __init__(self, fn: Callable | str, takes: str = "numpy", **options) -> None:
        fn = resolve_function(fn)
        if takes not in TAKES:
            raise ConfigError(f"takes: must be 'numpy' or 'torch', got {takes!r}")
        super().__init__(getattr(fn, "__name__", type(fn).__name__), **options)
        self.fn, self.takes = fn, takes

    def ask(self, x: np.ndarray | dict[str, np.ndarray], ids: torch.Tensor | None) -> list[np.ndarray]:
        batch = x if self.takes == "numpy" else _as_tensors(x)
        try:
            outputs = self.fn(batch)
        except (TypeError, AttributeError) as exc:
            other = "torch" if self.takes == "numpy" else "numpy"
            raise ConfigError(
                f"teacher function {self.source} failed on a {self.takes} batch ({type(exc).__name__}: {exc}); "
                f"if it takes {other}, say takes='{other}'"
            ) from exc
        return [_as_array(o) for o in _flattened(outputs, self.source, count(x))]


def resolve_function(fn: Callable | str) -> Callable:
    """``fn`` itself, or the function ``"package.module:function"`` names."""
    if callable(fn):
        return fn
    if not isinstance(fn, str) or fn.count(":") != 1:
        raise ConfigError(f"teacher function: expected a callable or 'package.module:function', got {fn!r}")
    module_name, name = fn.split(":")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"teacher function '{fn}' cannot be imported: {exc}") from exc
    if not callable(found):
        raise ConfigError(f"teacher function '{fn}' is not callable")
    return found


def _as_tensors(x: np.ndarray | dict[str, np.ndarray]):
    if isinstance(x, Mapping):
        return {name: torch.from_numpy(a) for name, a in x.items()}
    return torch.from_numpy(x)


def _flattened(outputs, source: str, samples: int) -> list:
    """One entry per output: a dict's values, a tuple's items, a list of as many arrays as outputs; a list
    with one entry per sample (rows, as JSON gives them) is one output."""
    if isinstance(outputs, Mapping):
        outputs = list(outputs.values())
    elif isinstance(outputs, tuple) or (
        isinstance(outputs, list) and len(outputs) != samples
        and all(isinstance(o, (np.ndarray, torch.Tensor)) for o in outputs)
    ):  # fmt: skip
        outputs = list(outputs)
    else:
        outputs = [outputs]
    if not outputs:
        raise ConfigError(f"teacher function {source} returned nothing")
    return outputs


def _as_array(output) -> np.ndarray:
    if isinstance(output, torch.Tensor):
        return output.detach().cpu().float().numpy()
    return np.asarray(output)
