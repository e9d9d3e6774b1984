"""The seam between the budget search and the layers above it.

Judging a budget needs the model as the file the run ships (quantize, export) and that file measured on
the target (the benchmark). Those live above the search, so the Pipeline hands them in as one
:class:`Measurement` on the run context (``ctx.measurement``), built by :mod:`edgekd.run.measurement`.
A test or another runner can hand in its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

if TYPE_CHECKING:
    from edgekd.search.budget import Budget
    from edgekd.stage import RunContext
    from edgekd.targets import Target

# (file, its one input, threads, runs, min seconds) -> per-call times in ms
FileTimer = Callable[[Path, np.ndarray, int, int, float], list[float]]


@dataclass(frozen=True)
class Measurement:
    """How a budget search turns a model into a shipped file and a number of milliseconds."""

    ship: Callable[[nn.Module, RunContext, Budget, Path], Path]  # the model as the file the run ships
    bench_p50: Callable[[Path, Target], float]  # the file's p50 latency at batch 1, measured on the target
    estimate: Callable[[Path, Target], float]  # the file's latency estimated on the target's reference phone
    roofline: Callable[[float, float, Any, bool], float]  # (MACs, weight bytes, phone, int8) -> estimated ms
    time_file: FileTimer  # a one-layer file timed in its runtime, for the per-layer table
